// Issue #18: one trace per payment, on the real stack (started with --tracing by scripts/test.sh):
// a payment made through nginx has its spans from the node's accept, the relay's publish, the
// processor's consume, claim, PSP call, write-back and Postgres projection, all in the trace id
// derived from its identity, the processor's consume a child of the relay's publish through the
// Kafka traceparent header, in an order that matches what happened.

import t from 'tap'
import { execFileSync } from 'node:child_process'
import { eventually, testMerchantId } from '../helpers/api.ts'
import { closeDb, createWith, nodeReaches, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'
import { paymentTraceIds } from '../../lib/trace-id.ts'
import { readTrace, waterfall, type TraceSpan } from '../../lib/trace-reader.ts'

const stack = loadStackInfo()
const terminalDeadlineMs = 30_000
/** The exporters write every tracingLimits.exportIntervalMs (1 s); a few intervals. */
const spansDeadlineMs = 15_000
/** Spans of two processes (or threads) are compared across clocks read separately. */
const crossProcessToleranceMs = 5
t.teardown(closeDb)

const tracesDir = stack.tracesDir
if (tracesDir === undefined) {
  t.fail('the stack runs without tracing: start it with --tracing (scripts/test.sh does)')
  t.end()
} else {
  t.test('a payment\'s trace: node accept → relay publish → processor (claim, PSP, write-back) and projection', async (t) => {
    const id = await createWith('pm_card_visa', 'trace')
    const node = await nodeReaches(id, terminalDeadlineMs)
    t.equal(node.status, 'succeeded')
    await postgresReaches(id, node.version, terminalDeadlineMs)
    const { traceId, rootSpanId } = paymentTraceIds(testMerchantId, id)

    const find = (spans: readonly TraceSpan[], name: string, eventType?: string): TraceSpan | undefined =>
      spans.find((s) => s.name === name && (eventType === undefined || s.attributes['ringpay.event.type'] === eventType))
    const wanted: Array<[string, string | undefined]> = [
      ['POST /payments', undefined], ['group commit (fsync)', undefined],
      ['send payments.events', 'payment.created'], ['process payment.created', undefined],
      ['project to postgres', 'payment.created'], ['node claim (processing)', undefined], ['psp charge', undefined],
      ['node write-back (succeeded)', undefined],
      ['send payments.events', 'payment.status_changed'], ['process payment.status_changed', undefined],
      ['project to postgres', 'payment.status_changed'],
    ]
    // The batch exporters flush on their interval: poll until every span is in the files.
    const spans = await eventually(async () => {
      const found = await readTrace(tracesDir, traceId)
      return wanted.every(([name, type]) => find(found, name, type) !== undefined) ? found : undefined
    }, spansDeadlineMs, `the spans of ${id} in ${tracesDir}`)
    t.ok(spans.every((s) => s.traceId === traceId), 'one trace, the derived id')

    const get = (name: string, type?: string): TraceSpan => find(spans, name, type)!
    const accept = get('POST /payments')
    t.equal(accept.spanId, rootSpanId, 'the accept span is the derived root')
    t.equal(accept.parentSpanId, '', 'and has no parent')
    t.equal(accept.service, 'payment-svc')
    t.equal(accept.attributes['http.response.status_code'], 202)
    t.ok(Number(accept.attributes['ringpay.commit.batch_size']) >= 1, 'the accept carries its group commit\'s batch size')
    const commit = get('group commit (fsync)')
    t.equal(commit.parentSpanId, rootSpanId)

    const publish = get('send payments.events', 'payment.created')
    t.equal(publish.service, 'cdc-relay')
    t.equal(publish.parentSpanId, rootSpanId, 'the relay\'s publish hangs off the accept')
    const consume = get('process payment.created')
    t.equal(consume.service, 'processor')
    t.equal(consume.parentSpanId, publish.spanId, 'the processor\'s consume is a child of the relay\'s publish (Kafka traceparent)')
    t.equal(consume.attributes['ringpay.trace.parent_from_header'], true)

    const claim = get('node claim (processing)')
    const psp = get('psp charge')
    const writeBack = get('node write-back (succeeded)')
    const projection = get('project to postgres', 'payment.created')
    for (const child of [claim, psp, writeBack, projection]) {
      t.equal(child.parentSpanId, consume.spanId, `${child.name} is a child of the consume span`)
      t.equal(child.service, 'processor')
    }
    t.equal(psp.attributes['ringpay.psp.provider'], 'sandbox')
    t.equal(psp.attributes['http.response.status_code'], 201, 'the sandbox\'s answer to a new charge')
    t.equal(psp.attributes['ringpay.psp.outcome'], 'succeeded')
    t.equal(psp.attributes['ringpay.psp.attempt'], 1)
    // The PSP's webhook races the write-back: whichever reaches the node first applies the outcome,
    // and the other confirms it (applied false). Either way the trace shows who applied it.
    const writeBackApplied = writeBack.attributes['ringpay.transition.applied']
    t.type(writeBackApplied, 'boolean', 'the write-back says whether it applied the outcome')
    const appliedBy = writeBackApplied === true
      ? writeBack
      : (await eventually(async () => (await readTrace(tracesDir, traceId)).find((s) => s.name === 'webhook charge.succeeded' && s.attributes['ringpay.webhook.outcome'] === 'applied'),
          spansDeadlineMs, `the webhook span that applied ${id}'s outcome`))
    t.ok(appliedBy !== undefined, `the outcome was applied by ${appliedBy.name}`)

    // Ordering: what happened after what. Within the processor one clock; across processes a few ms.
    t.ok(publish.startMs + crossProcessToleranceMs >= commit.startMs, 'the relay reads after the commit started')
    t.ok(consume.startMs + crossProcessToleranceMs >= publish.startMs, 'consumed after the publish started')
    t.ok(claim.startMs >= consume.startMs && psp.startMs >= claim.endMs && writeBack.startMs >= psp.endMs, 'claim, then PSP, then write-back')
    t.ok(writeBack.endMs <= consume.endMs, 'the consume span ends after its work')
    const outcomeConsume = get('process payment.status_changed')
    t.equal(outcomeConsume.parentSpanId, get('send payments.events', 'payment.status_changed').spanId)
    t.ok(outcomeConsume.startMs + crossProcessToleranceMs >= appliedBy.startMs, 'the outcome\'s event is consumed after the write that applied it')
    for (const s of spans) t.ok(s.endMs >= s.startMs, `${s.name}: end ≥ start`)

    const rows = waterfall(spans)
    t.equal(rows[0]!.span.spanId, rootSpanId, 'the waterfall starts at the accept')
    t.equal(rows[0]!.offsetMs, 0)
    t.ok(rows.find((r) => r.span === psp)!.depth >= 3, 'the PSP call nests under accept → publish → consume')

    // The CLI prints the same trace.
    const out = execFileSync(process.execPath, ['scripts/trace.ts', '--dir', tracesDir, testMerchantId, id], { encoding: 'utf8' })
    t.match(out, new RegExp(`trace ${traceId}`))
    t.match(out, /psp charge\s+processor/)
  })

  t.test('a PSP webhook received on the node is a span of the payment\'s trace', async (t) => {
    const id = await createWith('pm_card_async', 'trace-wh')
    const node = await nodeReaches(id, terminalDeadlineMs)
    t.equal(node.status, 'succeeded')
    const { traceId, rootSpanId } = paymentTraceIds(testMerchantId, id)
    const spans = await eventually(async () => {
      const found = await readTrace(tracesDir, traceId)
      return found.some((s) => s.name === 'webhook charge.succeeded') ? found : undefined
    }, spansDeadlineMs, `the webhook span of ${id}`)
    const webhook = spans.find((s) => s.name === 'webhook charge.succeeded')!
    t.equal(webhook.service, 'payment-svc')
    t.equal(webhook.parentSpanId, rootSpanId)
    t.equal(webhook.attributes['ringpay.webhook.outcome'], 'applied')
    t.equal(webhook.attributes['ringpay.psp.provider'], 'sandbox')
  })
}
