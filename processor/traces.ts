// The processor's spans (issue #18), in each payment's trace: per consumed event one consume span
// (handed over by the consumer → finished: projected and its work done), a child of the relay's
// publish span named by the event's `traceparent` header, and under it the Postgres projection,
// the claim and the outcome write-back on the node, and every PSP attempt. Called only when
// tracing is on (lib/tracing.ts).
//
// The header is trusted only for the trace this processor derives from the verified event (see
// cdc-relay/traces.ts: the event MAC does not cover headers); otherwise the consume span hangs off
// the payment's root span.

import type { ConsumedMessage } from '../lib/event-bus.ts'
import type { ChangeEvent } from '../lib/payment-codec.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import { parseTraceparent, traceparentHeader } from '../lib/trace-id.ts'
import { epochMsOf, traceNowMs, type PaymentTracer, type TracedPayment } from '../lib/tracing.ts'

export interface ConsumeSpan {
  payment: TracedPayment
  traceId: string
  spanId: string
  parentSpanId: string
  /** The relay's span was the parent (a valid traceparent of this payment's trace). */
  fromHeader: boolean
}

export function consumeSpanOf (tracer: PaymentTracer, event: ChangeEvent, message: ConsumedMessage): ConsumeSpan {
  const payment = { merchantId: event.payment.merchantId, checkoutId: event.checkoutId }
  const { traceId, rootSpanId } = tracer.ids(payment)
  const header = parseTraceparent(message.headers[traceparentHeader])
  const fromHeader = header !== undefined && header.traceId === traceId
  return { payment, traceId, spanId: tracer.newSpanId(), parentSpanId: fromHeader ? header.spanId : rootSpanId, fromHeader }
}

/** Runs the event's work with its consume span as the parent of what it records. */
export function withinConsume (tracer: PaymentTracer, span: ConsumeSpan, work: () => Promise<void>): () => Promise<void> {
  return () => tracer.within(span.traceId, span.spanId, work)
}

/**
 * Records, once they settle, the projection span (`projected`: the statement that took the
 * fetch's events, `events` of them) and the consume span (`done`) of one event.
 */
export function traceConsumed (tracer: PaymentTracer, span: ConsumeSpan, o: {
  event: ChangeEvent
  message: ConsumedMessage
  handedOverAt: number
  events: number
  projected: Promise<unknown>
  done: Promise<void>
}): void {
  const startMs = epochMsOf(o.handedOverAt)
  o.projected.then(() => {
    tracer.record({
      name: 'project to postgres', kind: 'client', payment: span.payment, parentSpanId: span.spanId, startMs, endMs: traceNowMs(),
      attributes: { 'db.system.name': 'postgresql', 'db.operation.name': 'INSERT', 'db.operation.batch.size': o.events, 'ringpay.event.type': o.event.type },
    })
  }, () => {})
  const finish = (errorType?: string): void => {
    tracer.record({
      name: `process ${o.event.type}`,
      kind: 'consumer',
      payment: span.payment,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      startMs,
      endMs: traceNowMs(),
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'process',
        'messaging.destination.name': o.message.topic,
        'messaging.destination.partition.id': String(o.message.partition),
        'messaging.kafka.offset': Number(o.message.offset),
        'messaging.message.id': o.event.eventId,
        'ringpay.event.type': o.event.type,
        'ringpay.payment.status': o.event.payment.status,
        'ringpay.trace.parent_from_header': span.fromHeader,
      },
      ...(errorType !== undefined ? { errorType } : {}),
    })
  }
  o.done.then(() => finish(), (error: unknown) => finish((error as Error | undefined)?.name ?? 'error'))
}

/** A call to the payment's node: the claim (a move to processing) or an outcome's write-back. */
export function traceNodeTransition (tracer: PaymentTracer, id: PaymentId, o: {
  to: string
  startedAt: number
  applied?: boolean
  httpStatus?: number
  errorCode?: string
  batched: boolean
}): void {
  tracer.record({
    name: o.to === 'processing' ? 'node claim (processing)' : `node write-back (${o.to})`,
    kind: 'client',
    payment: { merchantId: id.merchant_id, checkoutId: id.checkout_id },
    startMs: epochMsOf(o.startedAt),
    endMs: traceNowMs(),
    attributes: {
      'http.request.method': 'POST',
      'ringpay.transition.to': o.to,
      'ringpay.transition.batched': o.batched,
      ...(o.applied !== undefined ? { 'ringpay.transition.applied': o.applied } : {}),
      ...(o.httpStatus !== undefined ? { 'http.response.status_code': o.httpStatus } : {}),
    },
    ...(o.errorCode !== undefined ? { errorType: o.errorCode } : {}),
  })
}

/** One PSP attempt (a charge, capture, refund or cancel): provider, HTTP status, outcome, attempt number. */
export function tracePspAttempt (tracer: PaymentTracer, o: {
  merchantId: string
  checkoutId: string
  provider: string
  operation: string
  attempt: number
  startedAt: number
  httpStatus: number | undefined
  outcome: string
  errorCode?: string
}): void {
  tracer.record({
    name: `psp ${o.operation}`,
    kind: 'client',
    payment: { merchantId: o.merchantId, checkoutId: o.checkoutId },
    startMs: epochMsOf(o.startedAt),
    endMs: traceNowMs(),
    attributes: {
      'http.request.method': 'POST',
      'ringpay.psp.provider': o.provider,
      'ringpay.psp.operation': o.operation,
      'ringpay.psp.attempt': o.attempt,
      'ringpay.psp.outcome': o.outcome,
      ...(o.httpStatus !== undefined ? { 'http.response.status_code': o.httpStatus } : {}),
    },
    ...(o.errorCode !== undefined ? { errorType: o.errorCode } : {}),
  })
}
