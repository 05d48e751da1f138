// Issue #18: the processor's consume span takes the relay's publish span as its parent only when
// the traceparent header names the trace derived from the (verified) event itself; a header of
// another trace, or a malformed one, cannot move the payment's spans: they hang off its root.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConsumedMessage } from '../../lib/event-bus.ts'
import type { ChangeEvent } from '../../lib/payment-codec.ts'
import { formatTraceparent, paymentTraceIds } from '../../lib/trace-id.ts'
import { readTrace } from '../../lib/trace-reader.ts'
import { createPaymentTracer } from '../../lib/tracing-sdk.ts'
import { consumeSpanOf, traceConsumed, withinConsume } from '../traces.ts'

const tracer = createPaymentTracer({ service: 'processor', dir: mkdtempSync(join(tmpdir(), 'processor-traces-')) })
t.teardown(() => tracer.shutdown())

const event = { type: 'payment.created', eventId: 'n1:7', checkoutId: 'co_9', payment: { merchantId: 'm_9', status: 'pending' } } as unknown as ChangeEvent
const messageWith = (headers: Record<string, string>): ConsumedMessage => ({ topic: 'payments.events', partition: 3, offset: '41', key: 'co_9', value: new Uint8Array(), headers })
const { traceId, rootSpanId } = paymentTraceIds('m_9', 'co_9')

t.test('a traceparent of the event\'s own trace makes the relay\'s span the parent', (t) => {
  const span = consumeSpanOf(tracer, event, messageWith({ traceparent: formatTraceparent(traceId, 'aaaaaaaaaaaaaaaa') }))
  t.same({ traceId: span.traceId, parent: span.parentSpanId, fromHeader: span.fromHeader }, { traceId, parent: 'aaaaaaaaaaaaaaaa', fromHeader: true })
  t.end()
})

t.test('another trace\'s traceparent, a malformed one or none: the payment\'s root is the parent', (t) => {
  const other = paymentTraceIds('m_other', 'co_9').traceId
  const cases: Array<Record<string, string>> = [{ traceparent: formatTraceparent(other, 'aaaaaaaaaaaaaaaa') }, { traceparent: 'nonsense' }, {}]
  for (const headers of cases) {
    const span = consumeSpanOf(tracer, event, messageWith(headers))
    t.same({ traceId: span.traceId, parent: span.parentSpanId, fromHeader: span.fromHeader }, { traceId, parent: rootSpanId, fromHeader: false }, JSON.stringify(headers))
  }
  t.end()
})

t.test('the work\'s spans are children of the consume span; a failed work marks it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'processor-traces-'))
  const local = createPaymentTracer({ service: 'processor', dir })
  const span = consumeSpanOf(local, event, messageWith({}))
  const work = withinConsume(local, span, async () => {
    await new Promise((resolve) => setImmediate(resolve))
    local.record({ name: 'psp charge', kind: 'client', payment: span.payment, startMs: Date.now(), endMs: Date.now() + 1 })
    throw new Error('boom')
  })
  const done = work()
  traceConsumed(local, span, { event, message: messageWith({}), handedOverAt: performance.now(), events: 1, projected: Promise.resolve(), done })
  await t.rejects(done)
  await new Promise((resolve) => setImmediate(resolve))
  await local.shutdown()
  const spans = await readTrace(dir, traceId)
  const byName = new Map(spans.map((s) => [s.name, s]))
  t.equal(byName.get('psp charge')?.parentSpanId, span.spanId, 'recorded after an await, still under the consume span')
  t.equal(byName.get('project to postgres')?.parentSpanId, span.spanId)
  const consume = byName.get('process payment.created')!
  t.equal(consume.spanId, span.spanId)
  t.equal(consume.error, true)
  t.equal(consume.attributes['messaging.kafka.offset'], 41)
})
