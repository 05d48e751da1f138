// The node's spans (issue #18): the accept of a payment (the root of its trace: POST /payments
// through validation, the ring buffer and the fsynced group commit, with the commit as a child
// span carrying the batch size) and a PSP webhook received. Called only when tracing is on
// (lib/tracing.ts `tracer` defined), once per request, after it was answered.

import { epochMsOf, traceNowMs, type PaymentTracer } from '../lib/tracing.ts'

/**
 * The group commit that made the latest batch durable. A create's continuation runs in the
 * microtasks right after its batch resolved, before the next batch can finish (the committer
 * starts it on setImmediate and it waits for the disk), so what a create that was just acknowledged
 * reads here is its own batch.
 */
let lastBatch: { size: number, startMs: number, endMs: number } | undefined

/** payment-svc/node.ts calls this from onBatchWritten, when tracing is on. */
export function noteCommittedBatch (size: number, durationMs: number): void {
  const endMs = traceNowMs()
  lastBatch = { size, startMs: endMs - durationMs, endMs }
}

export type AcceptOutcome = 'created' | 'replayed' | 'rejected'

export function traceAccept (tracer: PaymentTracer, o: {
  nodeId: string
  merchantId: string
  checkoutId: string
  /** performance.now() when the request's handling started. */
  startedAt: number
  outcome: AcceptOutcome
  httpStatus: number
  errorCode?: string
}): void {
  const payment = { merchantId: o.merchantId, checkoutId: o.checkoutId }
  const endMs = traceNowMs()
  const attributes = {
    'http.request.method': 'POST',
    'http.route': '/payments',
    'http.response.status_code': o.httpStatus,
    'ringpay.node.id': o.nodeId,
    'ringpay.merchant_id': o.merchantId,
    'ringpay.checkout_id': o.checkoutId,
    'ringpay.accept.outcome': o.outcome,
  }
  if (o.outcome !== 'created') {
    // A replay or a refusal is not the payment's accept: a child of it (when there is one).
    tracer.record({
      name: 'POST /payments', kind: 'server', payment, startMs: epochMsOf(o.startedAt), endMs, attributes,
      ...(o.errorCode !== undefined ? { errorType: o.errorCode } : {}),
    })
    return
  }
  const batch = lastBatch
  tracer.record({
    name: 'POST /payments', kind: 'server', payment, root: true, startMs: epochMsOf(o.startedAt), endMs,
    attributes: batch === undefined ? attributes : { ...attributes, 'ringpay.commit.batch_size': batch.size },
  })
  if (batch !== undefined) {
    tracer.record({
      name: 'group commit (fsync)', kind: 'internal', payment, startMs: batch.startMs, endMs: batch.endMs,
      attributes: { 'ringpay.commit.batch_size': batch.size, 'db.system.name': 'leveldb' },
    })
  }
}

export function traceWebhook (tracer: PaymentTracer, o: {
  nodeId: string
  merchantId: string
  checkoutId: string
  provider: string
  type: string
  startedAt: number
  outcome: string
}): void {
  tracer.record({
    name: `webhook ${o.type}`,
    kind: 'server',
    payment: { merchantId: o.merchantId, checkoutId: o.checkoutId },
    startMs: epochMsOf(o.startedAt),
    endMs: traceNowMs(),
    attributes: {
      'http.request.method': 'POST',
      'http.route': '/webhooks/psp/{provider}/{id}',
      'ringpay.node.id': o.nodeId,
      'ringpay.psp.provider': o.provider,
      'ringpay.webhook.type': o.type,
      'ringpay.webhook.outcome': o.outcome,
    },
  })
}
