// One trace per payment without storing anything (issue #18): every process that handles a
// payment derives the same trace id from the payment's identity (lib/payment-id.ts), so its spans
// land in one trace with no id carried in the proto, Postgres or Kafka. The node's accept span
// takes the derived root span id, so spans of another process that know no better parent hang off
// it. W3C trace context is still propagated in the relay's Kafka headers (traceparent), which makes
// the processor's spans children of the relay's publish span.

import { createHash } from 'node:crypto'
import { paymentKey } from './payment-id.ts'

/** Domain separation (and a version): changing it moves every payment to a new trace id. */
const traceIdPrefix = 'ringpay-trace-v1\0'
const traceIdBytes = 16
const spanIdBytes = 8

export interface PaymentTraceIds {
  /** 32 lowercase hex digits: SHA-256(prefix + `<merchant>/<checkout>`) bytes 0..15. */
  traceId: string
  /** 16 lowercase hex digits: bytes 16..23 of the same digest; the node's accept span. */
  rootSpanId: string
}

export function paymentTraceIds (merchantId: string, checkoutId: string): PaymentTraceIds {
  const digest = createHash('sha256').update(traceIdPrefix + paymentKey(merchantId, checkoutId)).digest()
  // All-zero ids are invalid in W3C trace context; a digest with 16 (or 8) zero bytes is not a case
  // worth code, but it is checked, since an invalid id would silently drop the spans.
  const traceId = digest.subarray(0, traceIdBytes).toString('hex')
  const rootSpanId = digest.subarray(traceIdBytes, traceIdBytes + spanIdBytes).toString('hex')
  if (/^0+$/.test(traceId) || /^0+$/.test(rootSpanId)) throw new Error('derived trace id is all zeroes')
  return { traceId, rootSpanId }
}

/** A W3C `traceparent` header value (version 00, sampled). */
export function formatTraceparent (traceId: string, spanId: string): string {
  return `00-${traceId}-${spanId}-01`
}

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/

/** The trace and parent span of a `traceparent` value; undefined when malformed or all-zero. */
export function parseTraceparent (value: string | undefined): { traceId: string, spanId: string } | undefined {
  if (value === undefined) return undefined
  const match = traceparentPattern.exec(value)
  if (match === null || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined
  return { traceId: match[1]!, spanId: match[2]! }
}

/** Kafka header carrying the relay publish span's context (W3C Trace Context). */
export const traceparentHeader = 'traceparent'
/** Its bytes on the wire: name plus `00-<32>-<16>-01`. */
export const traceparentHeaderBytes = traceparentHeader.length + 55
