// The relay's spans (issue #18): one publish span per event, in its payment's trace (child of the
// payment's root, the node's accept span), from the change-log read to Kafka's acknowledgement;
// and its context in the event's Kafka headers (W3C `traceparent`), so the processor's spans of
// that event are children of it. Called only when tracing is on (lib/tracing.ts).
//
// The header and the event MAC: `event-mac` (lib/event-signing.ts) covers the event's bytes only,
// not its headers, so adding `traceparent` leaves every signature valid, and the MAC says nothing
// of the header. The processor therefore trusts a traceparent only for the trace it derives from
// the verified event itself (same trace id): a header can at most pick a parent span within that
// payment's own trace, never move spans into another payment's trace.
//
// Bytes: the header (traceparentHeaderBytes, 66) is not counted in an entry's messageBytes; a full
// batch adds publishBatchEventsMax × 66 = 66 KB, inside the half of message.max.bytes that
// publishBatchBytesMax leaves free (cdc-relay/limits.ts).

import type { EventMessage } from '../lib/event-bus.ts'
import { formatTraceparent, traceparentHeader } from '../lib/trace-id.ts'
import { epochMsOf, traceNowMs, type PaymentTracer, type TracedPayment } from '../lib/tracing.ts'
import type { ChangeLogEntry } from './change-log.ts'
import { readChangeEventMerchantId } from './event-header.ts'

export interface PublishTrace {
  payments: TracedPayment[]
  spanIds: string[]
}

/** Gives each message a traceparent naming the publish span its event will get. */
export function traceMessages (tracer: PaymentTracer, entries: readonly ChangeLogEntry[], messages: EventMessage[]): PublishTrace {
  const payments: TracedPayment[] = new Array(entries.length)
  const spanIds: string[] = new Array(entries.length)
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    const payment = { merchantId: readChangeEventMerchantId(entry.value), checkoutId: entry.header.checkoutId }
    const spanId = tracer.newSpanId()
    payments[i] = payment
    spanIds[i] = spanId
    const message = messages[i]!
    // A copy: entry.headers is shared by every attempt and by the unsigned path.
    messages[i] = { ...message, headers: { ...message.headers, [traceparentHeader]: formatTraceparent(tracer.ids(payment).traceId, spanId) } }
  }
  return { payments, spanIds }
}

export function tracePublished (tracer: PaymentTracer, trace: PublishTrace, entries: readonly ChangeLogEntry[], o: {
  topic: string
  nodeId: string
  /** performance.now() when the batch's read from the change log started. */
  readStartedAt: number
  attempts: number
  source: string
}): void {
  const startMs = epochMsOf(o.readStartedAt)
  const endMs = traceNowMs()
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    tracer.record({
      name: `send ${o.topic}`,
      kind: 'producer',
      payment: trace.payments[i]!,
      spanId: trace.spanIds[i]!,
      startMs,
      endMs,
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.destination.name': o.topic,
        'messaging.message.id': entry.header.eventId,
        'messaging.batch.message_count': entries.length,
        'ringpay.node.id': o.nodeId,
        'ringpay.event.type': entry.header.type,
        'ringpay.event.sequence': entry.sequence,
        'ringpay.relay.attempts': o.attempts,
        'ringpay.relay.read_source': o.source,
      },
    })
  }
}
