// The tracing switch (issue #18): one trace per payment, off by default. This module is all a
// service loads when tracing is off: it never imports the OpenTelemetry SDK (tracing-sdk.ts is
// imported dynamically by startTracing, only when RINGPAY_TRACING=1), and every span site is one
// check of the `tracer` binding, undefined when off:
//
//   const t = tracer
//   if (t !== undefined) t.record({ ... })
//
// Spans are recorded once they ended, with their start and end times (epoch ms from
// performance.timeOrigin + performance.now(): the machine's clock, so spans of one payment in
// several processes line up), so a span site adds no object or closure to the code it times.

import type { PaymentTraceIds } from './trace-id.ts'

export const tracingEnv = 'RINGPAY_TRACING'
/** Where trace files go (`<stack dir>/traces`); required when tracing is on. */
export const tracesDirEnv = 'RINGPAY_TRACES_DIR'

export type SpanKindName = 'server' | 'client' | 'producer' | 'consumer' | 'internal'
export type SpanAttributes = Record<string, string | number | boolean>

/** A payment: what its trace id is derived from (lib/trace-id.ts). */
export interface TracedPayment {
  merchantId: string
  checkoutId: string
}

export interface SpanRecord {
  name: string
  payment: TracedPayment
  kind: SpanKindName
  /** Epoch ms (fractional). */
  startMs: number
  endMs: number
  attributes?: SpanAttributes
  /** The span's own id when it was chosen before it ended (a traceparent already sent). */
  spanId?: string
  /**
   * Its parent. Default: the span of the current scope (`within`) when it belongs to the same
   * payment, else the payment's root span (the node's accept span).
   */
  parentSpanId?: string
  /** The payment's root span itself (the node's accept span): its id is the derived root span id. */
  root?: boolean
  /** Set: the span failed (status ERROR, `error.type`). */
  errorType?: string
}

export interface PaymentTracer {
  readonly service: string
  ids: (payment: TracedPayment) => PaymentTraceIds
  newSpanId: () => string
  record: (span: SpanRecord) => void
  /** Runs `work` with `spanId` of the payment's trace as the default parent of what it records. */
  within: <T>(traceId: string, spanId: string, work: () => Promise<T>) => Promise<T>
  /** Writes what is queued, bounded by tracingLimits.shutdownFlushMsMax; tracing stays on. */
  flush: () => Promise<void>
  /** Writes what is queued and stops; later spans are dropped. */
  shutdown: () => Promise<void>
}

/** The process's tracer; undefined when tracing is off. */
export let tracer: PaymentTracer | undefined

/** performance.now() as epoch ms. */
export function epochMsOf (performanceNowMs: number): number {
  return performance.timeOrigin + performanceNowMs
}

/** Now, as epoch ms with sub-millisecond precision. */
export function traceNowMs (): number {
  return performance.timeOrigin + performance.now()
}

export function tracingEnabled (env: NodeJS.ProcessEnv): boolean {
  return env[tracingEnv] === '1'
}

/**
 * Turns tracing on for this process (or thread) when the environment says so; a no-op otherwise.
 * `service` names the trace file (`<service>-<pid>.jsonl`) and the spans' `service.name`.
 */
export async function startTracing (service: string, env: NodeJS.ProcessEnv = process.env): Promise<PaymentTracer | undefined> {
  if (!tracingEnabled(env)) return undefined
  if (tracer !== undefined) return tracer
  const dir = env[tracesDirEnv]
  if (dir === undefined || dir === '') throw new Error(`${tracingEnv}=1 needs ${tracesDirEnv} (the directory trace files go to)`)
  const { createPaymentTracer } = await import('./tracing-sdk.ts')
  tracer = createPaymentTracer({ service, dir })
  return tracer
}

/** For tests: sets or clears the process's tracer. */
export function setTracerForTest (value: PaymentTracer | undefined): void {
  tracer = value
}
