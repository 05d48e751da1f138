// Issue #18: with tracing on, the relay gives each published event a traceparent header naming its
// publish span in the payment's derived trace; the event's MAC stays valid (it covers the bytes,
// not the headers); with a failed first attempt the re-sent batch carries the same headers.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventSigner, EventVerifier, eventMacHeader, newEventKey } from '../../lib/event-signing.ts'
import { parseTraceparent, paymentTraceIds } from '../../lib/trace-id.ts'
import { readTrace } from '../../lib/trace-reader.ts'
import { setTracerForTest } from '../../lib/tracing.ts'
import { createPaymentTracer } from '../../lib/tracing-sdk.ts'
import { LevelChangeLog } from '../change-log.ts'
import { Relay } from '../relay.ts'
import { FakeProducer, openTestNode, silentLog, testLimits, until } from './fixtures.ts'

const deadlineMs = 10_000

t.test('each event carries a traceparent of its publish span; MACs verify; retries re-send the same headers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-traces-'))
  const tracer = createPaymentTracer({ service: 'cdc-relay', dir })
  setTracerForTest(tracer)
  t.teardown(() => setTracerForTest(undefined))
  const node = await openTestNode('n1')
  t.teardown(() => node.close())
  const key = newEventKey('n1-k1', 'n1')
  const verifier = new EventVerifier({ keys: [key] })
  await node.createPayments(['tr-1', 'tr-2', 'tr-3'])
  const producer = new FakeProducer()
  producer.faults.push({ kind: 'fail', code: 'broker_unavailable' })
  const relay = new Relay({
    nodeId: 'n1', topic: 'payments.events', changeLog: new LevelChangeLog(node.store.db), producer,
    signer: new EventSigner(key.id, key.key), limits: testLimits({ retryBackoffBaseMs: 1, retryBackoffMaxMs: 2 }), log: silentLog,
    initialNextSequence: node.store.meta.nextSequence, report: () => {},
  })
  node.onCommitted((next, events) => relay.notifyCommitted(next, events))
  void relay.start()
  await until(() => relay.cursor === 4, deadlineMs, 'all published')
  await relay.stop(1_000)
  await tracer.shutdown()

  t.equal(producer.calls.length, 2, 'one failed attempt, one that went through')
  t.same(producer.calls[1]!.messages.map((m) => m.headers), producer.calls[0]!.messages.map((m) => m.headers), 'the retry carries the same headers')
  const messages = producer.partitions.flat()
  t.equal(messages.length, 3)
  for (const message of messages) {
    const parent = parseTraceparent(message.headers.traceparent)
    t.ok(parent !== undefined, 'a valid traceparent')
    t.equal(parent!.traceId, paymentTraceIds('merchant_demo', message.key!).traceId, 'in the payment\'s derived trace')
    t.same(verifier.verify('n1', message.value, message.headers[eventMacHeader]), { ok: true }, 'the MAC still verifies')
    const spans = await readTrace(dir, parent!.traceId)
    t.equal(spans.length, 1, 'one publish span per event')
    t.equal(spans[0]!.spanId, parent!.spanId, 'the header names the publish span')
    t.equal(spans[0]!.parentSpanId, paymentTraceIds('merchant_demo', message.key!).rootSpanId, 'a child of the accept span')
    t.equal(spans[0]!.attributes['ringpay.relay.attempts'], 2)
    t.equal(spans[0]!.attributes['messaging.message.id'], message.headers['event-id'])
  }
})

t.test('tracing off: no traceparent header', async (t) => {
  const node = await openTestNode('n1')
  t.teardown(() => node.close())
  await node.createPayments(['off-1'])
  const producer = new FakeProducer()
  const relay = new Relay({
    nodeId: 'n1', topic: 'payments.events', changeLog: new LevelChangeLog(node.store.db), producer, limits: testLimits(), log: silentLog,
    initialNextSequence: node.store.meta.nextSequence, report: () => {},
  })
  node.onCommitted((next, events) => relay.notifyCommitted(next, events))
  void relay.start()
  await until(() => relay.cursor === 2, deadlineMs, 'published')
  await relay.stop(1_000)
  t.equal(producer.partitions.flat()[0]!.headers.traceparent, undefined)
})
