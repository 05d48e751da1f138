// The OpenTelemetry side of tracing (issue #18), imported only when tracing is on (lib/tracing.ts).
// One TracerProvider per process or thread, a BatchSpanProcessor with the limits of
// tracing-limits.ts, the file exporter (trace-file-exporter.ts). Spans are recorded after they
// ended, with explicit times and ids:
// - a payment's trace id is derived from its identity (trace-id.ts); the SDK takes a trace id from
//   its IdGenerator only for a span with no parent, which only the root span is;
// - a span whose id was chosen before it ended (the relay's, sent in a traceparent header first)
//   or the root span (the derived id) gets it through the same IdGenerator: `record` sets the ids
//   the next startSpan asks for, synchronously, so nothing else can take them.

import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Tracer } from '@opentelemetry/api'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, RandomIdGenerator, TracerProvider, type IdGenerator } from '@opentelemetry/sdk-trace'
import { paymentTraceIds, type PaymentTraceIds } from './trace-id.ts'
import { TraceFileExporter } from './trace-file-exporter.ts'
import { tracingLimits } from './tracing-limits.ts'
import type { PaymentTracer, SpanKindName, SpanRecord, TracedPayment } from './tracing.ts'

const kinds: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER, client: SpanKind.CLIENT, producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER, internal: SpanKind.INTERNAL,
}

/** Random ids, except the ones `record` asked for the span it is starting. */
class ChosenIdGenerator implements IdGenerator {
  readonly #random = new RandomIdGenerator()
  nextTraceId: string | undefined
  nextSpanId: string | undefined
  generateTraceId (): string {
    const id = this.nextTraceId
    this.nextTraceId = undefined
    return id ?? this.#random.generateTraceId()
  }

  generateSpanId (): string {
    const id = this.nextSpanId
    this.nextSpanId = undefined
    return id ?? this.#random.generateSpanId()
  }
}

interface Scope { traceId: string, spanId: string }

export interface PaymentTracerOptions {
  service: string
  dir: string
  limits?: Partial<Record<keyof typeof tracingLimits, number>>
}

export function createPaymentTracer (options: PaymentTracerOptions): PaymentTracer & { exporter: TraceFileExporter } {
  const limits = { ...tracingLimits, ...options.limits }
  const ids = new ChosenIdGenerator()
  const exporter = new TraceFileExporter({ dir: options.dir, baseName: `${options.service}-${process.pid}`, fileBytesMax: limits.traceFileBytesMax })
  const processor = new BatchSpanProcessor({
    exporter,
    maxQueueSize: limits.spanQueueSpansMax,
    maxExportBatchSize: limits.exportBatchSpansMax,
    scheduledDelayMillis: limits.exportIntervalMs,
    exportTimeoutMillis: limits.exportTimeoutMs,
  })
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.service, 'service.instance.id': `${options.service}-${process.pid}`, 'process.pid': process.pid }),
    idGenerator: ids,
    spanLimits: { attributeValueLengthLimit: limits.attributeValueLengthMax, attributeCountLimit: limits.attributesPerSpanMax },
    spanProcessors: [processor],
  })
  const otelTracer: Tracer = provider.getTracer('ringpay')
  const scope = new AsyncLocalStorage<Scope>()
  const random = new RandomIdGenerator()

  const record = (span: SpanRecord): void => {
    const { traceId, rootSpanId } = paymentTraceIds(span.payment.merchantId, span.payment.checkoutId)
    let parentSpanId: string | undefined
    if (span.root === true) {
      ids.nextTraceId = traceId
      ids.nextSpanId = rootSpanId
    } else {
      const current = scope.getStore()
      parentSpanId = span.parentSpanId ?? (current?.traceId === traceId ? current.spanId : rootSpanId)
      if (span.spanId !== undefined) ids.nextSpanId = span.spanId
    }
    const parent = parentSpanId === undefined
      ? ROOT_CONTEXT
      : trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true })
    const started = otelTracer.startSpan(span.name, {
      kind: kinds[span.kind],
      startTime: span.startMs,
      ...(span.attributes !== undefined ? { attributes: span.attributes } : {}),
      ...(parentSpanId === undefined ? { root: true } : {}),
    }, parent)
    // Both ids were consumed by that startSpan, or the trace would be wrong: a bug here, never data.
    assert.ok(ids.nextSpanId === undefined && ids.nextTraceId === undefined, 'chosen span ids were not consumed')
    assert.equal(started.spanContext().traceId, traceId, 'span recorded outside its payment trace')
    if (span.errorType !== undefined) {
      started.setAttribute('error.type', span.errorType)
      started.setStatus({ code: SpanStatusCode.ERROR })
    }
    started.end(Math.max(span.endMs, span.startMs))
  }

  const flushBounded = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      provider.forceFlush({ timeoutMillis: limits.shutdownFlushMsMax }),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, limits.shutdownFlushMsMax) }),
    ]).finally(() => clearTimeout(timer))
  }

  return {
    service: options.service,
    exporter,
    ids: (payment: TracedPayment): PaymentTraceIds => paymentTraceIds(payment.merchantId, payment.checkoutId),
    newSpanId: () => random.generateSpanId(),
    record,
    within: (traceId, spanId, work) => scope.run({ traceId, spanId }, work),
    flush: flushBounded,
    shutdown: async () => {
      await flushBounded()
      await provider.shutdown()
    },
  }
}
