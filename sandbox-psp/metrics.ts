// Counters of the running process (since start), mirrored into prom-client for /metrics.
// Durable counts (charges by status, webhooks) live in the store and survive restarts; these are
// about requests and injected faults, which a restart may forget.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { DurableCounters } from './store.ts'

export interface RequestCounters {
  /** POST /v1/charges requests that passed validation. */
  attempts: number
  /** POST /v1/refunds requests that passed validation. */
  refundAttempts: number
  idempotentReplays: number
  idempotencyMismatches: number
  idempotencyInUse: number
  /** Random 500/503 answered without charging. */
  injected5xx: number
  /** Charges written, then the response held and dropped (random or pm_card_timeout_after_charge). */
  injectedTimeouts: number
  /** Random 429 answered without charging. */
  injectedRateLimits: number
  /** pm_card_5xx_once first attempts. */
  rule5xxOnce: number
  /** 429 because chargeRequestsInFlightMax was reached. */
  concurrencyRejections: number
  webhookAttempts: number
  webhookAttemptFailures: number
  settlementRowsStreamed: number
  chargesGenerated: number
}

export type RequestCounterName = keyof RequestCounters

export class PspMetrics {
  readonly registry = new Registry()
  readonly counters: RequestCounters = {
    attempts: 0,
    refundAttempts: 0,
    idempotentReplays: 0,
    idempotencyMismatches: 0,
    idempotencyInUse: 0,
    injected5xx: 0,
    injectedTimeouts: 0,
    injectedRateLimits: 0,
    rule5xxOnce: 0,
    concurrencyRejections: 0,
    webhookAttempts: 0,
    webhookAttemptFailures: 0,
    settlementRowsStreamed: 0,
    chargesGenerated: 0,
  }

  readonly requestDuration: Histogram<'route' | 'method' | 'status'>
  /** One fsynced store batch (group commit): its write time and how many writes it carried. */
  readonly storeBatchDuration: Histogram
  readonly storeBatchWrites: Histogram
  readonly #events: Counter<'event'>

  constructor (probes: {
    durable: () => Readonly<DurableCounters>
    chargeRequestsInFlight: () => number
    webhookDeliveriesInFlight: () => number
    heldResponses: () => number
  }) {
    collectDefaultMetrics({ register: this.registry })
    this.requestDuration = new Histogram({
      name: 'psp_http_request_duration_seconds',
      help: 'Sandbox PSP request duration by route, method and status',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30],
      registers: [this.registry],
    })
    this.storeBatchDuration = new Histogram({
      name: 'psp_store_batch_duration_seconds',
      help: 'One fsynced LevelDB batch of the group committer',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    })
    this.storeBatchWrites = new Histogram({
      name: 'psp_store_batch_writes',
      help: 'Write requests (charges, webhook updates, ...) in one fsynced LevelDB batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [this.registry],
    })
    this.#events = new Counter({
      name: 'psp_events_total',
      help: 'Sandbox PSP request outcomes and injected faults since start (see /admin/stats)',
      labelNames: ['event'],
      registers: [this.registry],
    })
    new Gauge({
      name: 'psp_charges',
      help: 'Charges stored, by status (durable)',
      labelNames: ['status'],
      registers: [this.registry],
      collect () {
        const c = probes.durable()
        this.set({ status: 'succeeded' }, c.succeeded)
        this.set({ status: 'failed' }, c.failed)
        this.set({ status: 'pending' }, c.pending)
        this.set({ status: 'requires_action' }, c.requiresAction)
        this.set({ status: 'requires_capture' }, c.requiresCapture)
        this.set({ status: 'canceled' }, c.canceled)
      },
    })
    new Gauge({
      name: 'psp_webhooks_pending',
      help: 'Webhook deliveries in the outbox',
      registers: [this.registry],
      collect () { this.set(probes.durable().webhooksPending) },
    })
    new Gauge({
      name: 'psp_charge_requests_in_flight',
      help: 'POST /v1/charges requests being worked on',
      registers: [this.registry],
      collect () { this.set(probes.chargeRequestsInFlight()) },
    })
    new Gauge({
      name: 'psp_webhook_deliveries_in_flight',
      help: 'Webhook deliveries in flight',
      registers: [this.registry],
      collect () { this.set(probes.webhookDeliveriesInFlight()) },
    })
    new Gauge({
      name: 'psp_held_responses',
      help: 'Responses held open to simulate a timeout after the charge',
      registers: [this.registry],
      collect () { this.set(probes.heldResponses()) },
    })
  }

  count (name: RequestCounterName, by = 1): void {
    this.counters[name] += by
    this.#events.inc({ event: name }, by)
  }
}
