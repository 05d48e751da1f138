// prom-client metrics of one node, served on the admin port.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface NodeMetrics {
  registry: Registry
  requestDuration: Histogram<'route' | 'method' | 'status'>
  payments: Counter<'outcome' | 'code'>
  transitions: Counter<'to' | 'outcome'>
  /** POST /payments/{id}/cancel by outcome (canceled, replayed, refused) and problem code. */
  cancels: Counter<'outcome' | 'code'>
  refunds: Counter<'outcome' | 'code'>
  /** POST /payments/{id}/capture by outcome (requested, replayed, refused) and problem code. */
  captures: Counter<'outcome' | 'code'>
  refundTransitions: Counter<'to' | 'outcome'>
  /** Requests with a wrong or unknown API key (counted against their client IP). */
  authFailures: Counter
  batchSize: Histogram
  batchWriteDuration: Histogram
  openPayments: Gauge
  openPaymentsStale: Gauge
  oldestOpenPaymentSeconds: Gauge
}

export function createNodeMetrics (nodeId: string, probes: {
  ringDepth: () => number
  ringCapacity: () => number
  longPollWaiters: () => number
  /** Undefined while a valid API keys file is loaded. */
  apiKeysUnavailableReason: () => string | undefined
  apiKeys: () => number
}): NodeMetrics {
  const registry = new Registry()
  registry.setDefaultLabels({ node_id: nodeId })
  collectDefaultMetrics({ register: registry })
  new Gauge({
    name: 'ringpay_ring_depth',
    help: 'Writes queued in the ring buffer, waiting for a batch',
    registers: [registry],
    collect () { this.set(probes.ringDepth()) },
  })
  new Gauge({
    name: 'ringpay_ring_capacity',
    help: 'Ring buffer slots',
    registers: [registry],
    collect () { this.set(probes.ringCapacity()) },
  })
  new Gauge({
    name: 'ringpay_long_poll_waiters',
    help: 'GET requests waiting for a payment to change',
    registers: [registry],
    collect () { this.set(probes.longPollWaiters()) },
  })
  new Gauge({
    name: 'ringpay_api_keys_available',
    help: '1 while a valid API keys file is loaded; 0 while every API key is refused (503 api_keys_unavailable)',
    registers: [registry],
    collect () { this.set(probes.apiKeysUnavailableReason() === undefined ? 1 : 0) },
  })
  new Gauge({
    name: 'ringpay_api_keys',
    help: 'API keys in force',
    registers: [registry],
    collect () { this.set(probes.apiKeys()) },
  })
  return {
    registry,
    requestDuration: new Histogram({
      name: 'ringpay_http_request_duration_seconds',
      help: 'Request duration by route, method and status',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30],
      registers: [registry],
    }),
    payments: new Counter({
      name: 'ringpay_payment_requests_total',
      help: 'Create requests by outcome (accepted, replayed, rejected) and problem code',
      labelNames: ['outcome', 'code'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'ringpay_auth_failures_total',
      help: 'Requests with a wrong or unknown API key (each counts against its client IP: failedKeyAttemptsMax)',
      registers: [registry],
    }),
    cancels: new Counter({
      name: 'ringpay_cancel_requests_total',
      help: 'Merchant cancels by outcome (canceled, replayed, refused) and problem code',
      labelNames: ['outcome', 'code'],
      registers: [registry],
    }),
    captures: new Counter({
      name: 'ringpay_capture_requests_total',
      help: 'Merchant capture requests by outcome (requested, replayed, refused) and problem code',
      labelNames: ['outcome', 'code'],
      registers: [registry],
    }),
    refunds: new Counter({
      name: 'ringpay_refund_requests_total',
      help: 'Merchant refund requests by outcome (accepted, replayed, refused) and problem code',
      labelNames: ['outcome', 'code'],
      registers: [registry],
    }),
    refundTransitions: new Counter({
      name: 'ringpay_refund_transitions_total',
      help: 'Internal refund transitions by target status and outcome (applied, noop, rejected)',
      labelNames: ['to', 'outcome'],
      registers: [registry],
    }),
    transitions: new Counter({
      name: 'ringpay_transitions_total',
      help: 'Internal transitions by target status and outcome (applied, noop, rejected)',
      labelNames: ['to', 'outcome'],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'ringpay_batch_size',
      help: 'Writes per group-committed LevelDB batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: [registry],
    }),
    openPayments: new Gauge({
      name: 'ringpay_open_payments', help: 'Payments on this node not yet terminal (last scan)', registers: [registry],
    }),
    openPaymentsStale: new Gauge({
      name: 'ringpay_open_payments_stale', help: 'Open payments older than openStaleAfterMs (last scan)', registers: [registry],
    }),
    oldestOpenPaymentSeconds: new Gauge({
      name: 'ringpay_oldest_open_payment_seconds', help: 'Age of the oldest payment on this node not yet terminal', registers: [registry],
    }),
    batchWriteDuration: new Histogram({
      name: 'ringpay_batch_write_duration_seconds',
      help: 'Time to write and fsync one batch',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1],
      registers: [registry],
    }),
  }
}
