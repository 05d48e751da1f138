// prom-client metrics of one processor.

import { eventRefusalCodes } from '../lib/event-signing.ts'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export function createProcessorMetrics (processorId: string, probes: { pspInFlight: () => number, paymentsInFlight: () => number }) {
  const registry = new Registry()
  registry.setDefaultLabels({ processor_id: processorId })
  collectDefaultMetrics({ register: registry })
  new Gauge({
    name: 'ringpay_processor_psp_calls_in_flight',
    help: 'PSP calls in flight',
    registers: [registry],
    collect () { this.set(probes.pspInFlight()) },
  })
  new Gauge({
    name: 'ringpay_processor_payments_in_flight',
    help: 'Checkout ids with work queued or running after projection (driving to the PSP, flagging)',
    registers: [registry],
    collect () { this.set(probes.paymentsInFlight()) },
  })
  const eventsRefused = new Counter({ name: 'ringpay_processor_events_refused_total', help: 'Change events refused as not genuine (bad or missing MAC, another node\'s payment), by reason; dead-lettered, never projected', labelNames: ['reason'], registers: [registry] })
  // Every reason's series from 0: the first refusal is then an increase the alert sees.
  for (const reason of eventRefusalCodes) eventsRefused.inc({ reason }, 0)
  return {
    registry,
    eventsConsumed: new Counter({ name: 'ringpay_processor_events_total', help: 'Change events consumed, by type', labelNames: ['type'], registers: [registry] }),
    eventDuration: new Histogram({
      name: 'ringpay_processor_event_duration_seconds',
      help: 'From a consumed event being handed over to it being finished (projected, and its payment driven)',
      registers: [registry],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    projectionDuration: new Histogram({
      name: 'ringpay_processor_projection_duration_seconds', help: 'Time of one projection statement (all events handed over meanwhile)', registers: [registry],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    }),
    projectionEvents: new Histogram({
      name: 'ringpay_processor_projection_events', help: 'Events in one projection statement', registers: [registry],
      buckets: [1, 4, 16, 64, 256, 1024, 4096],
    }),
    pspCalls: new Histogram({
      name: 'ringpay_psp_call_duration_seconds', help: 'PSP charge calls by outcome', labelNames: ['outcome'], registers: [registry],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    acceptedToTerminal: new Histogram({
      name: 'ringpay_payment_accepted_to_terminal_seconds',
      help: 'From the node accepting a payment to its terminal state being in Postgres',
      labelNames: ['status'], registers: [registry],
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60],
    }),
    eventsRefused,
    deadLetters: new Counter({ name: 'ringpay_processor_dead_letters_total', help: 'Events sent to the dead-letter topic, by reason', labelNames: ['reason'], registers: [registry] }),
    flagged: new Counter({ name: 'ringpay_processor_flagged_total', help: 'Payments flagged for review (PSP disagreed or said something unknown)', registers: [registry] }),
    projectionRetries: new Counter({ name: 'ringpay_processor_projection_retries_total', help: 'Postgres writes retried (Postgres down or failing)', registers: [registry] }),
    watchdogStale: new Gauge({ name: 'ringpay_watchdog_stale_payments', help: 'Non-terminal payments older than the watchdog age, last round', registers: [registry] }),
    watchdogOldestSeconds: new Gauge({ name: 'ringpay_watchdog_oldest_open_payment_seconds', help: 'Age of the oldest non-terminal payment in Postgres', registers: [registry] }),
    // Issue #16: per PSP provider.
    pspProviderCalls: new Histogram({
      name: 'ringpay_psp_provider_call_duration_seconds', help: 'PSP calls (charges, lookups, refunds, cancels) by provider and result (error: transport, timeout, 5xx, 429; ok: any answer)',
      labelNames: ['provider', 'result'], registers: [registry],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    pspBreakerState: new Gauge({ name: 'ringpay_psp_breaker_state', help: 'Circuit breaker per PSP provider: 0 closed, 1 half-open, 2 open', labelNames: ['provider'], registers: [registry] }),
    pspRouted: new Counter({ name: 'ringpay_psp_routed_total', help: 'Payments routed to a PSP provider at their claim (reason: cost, weight, breaker_skip, only_fit, no_rule) or moved there by a failover (reason failover)', labelNames: ['provider', 'reason'], registers: [registry] }),
    watchdogActions: new Counter({ name: 'ringpay_watchdog_actions_total', help: 'What the watchdog did, by action', labelNames: ['action'], registers: [registry] }),
  }
}

export type ProcessorMetrics = ReturnType<typeof createProcessorMetrics>
