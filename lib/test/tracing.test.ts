// Tracing (issue #18): the derived trace ids, the file exporter's size cap, spans written as
// OTLP/JSON and read back as a waterfall, and no SDK loaded when tracing is off.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { formatTraceparent, parseTraceparent, paymentTraceIds } from '../trace-id.ts'
import { pruneTraceFiles, TraceFileExporter } from '../trace-file-exporter.ts'
import { createPaymentTracer } from '../tracing-sdk.ts'
import { readPaymentTrace, readTrace, waterfall, formatWaterfall } from '../trace-reader.ts'
import { startTracing } from '../tracing.ts'

t.test('a payment\'s trace id is derived from merchant and checkout id alone', (t) => {
  const a = paymentTraceIds('m_1', 'co_1')
  t.same(paymentTraceIds('m_1', 'co_1'), a, 'deterministic: every process finds the same trace')
  t.match(a.traceId, /^[0-9a-f]{32}$/)
  t.match(a.rootSpanId, /^[0-9a-f]{16}$/)
  t.not(paymentTraceIds('m_2', 'co_1').traceId, a.traceId, 'another merchant\'s payment of the id is another trace')
  t.not(paymentTraceIds('m_1', 'co_2').traceId, a.traceId)
  t.not(paymentTraceIds('m_1c', 'o_1').traceId, paymentTraceIds('m_1', 'co_1').traceId, 'the separator keeps the pair unambiguous')
  // Pinned: a change of the derivation splits payments in flight across two traces; make it on purpose.
  t.equal(a.traceId, 'eb5dced095f45112d15c3937600dffee', 'SHA-256 of the prefix and m_1/co_1, first 16 bytes')
  t.end()
})

t.test('traceparent: formatted and parsed, malformed or zero ids refused', (t) => {
  const { traceId, rootSpanId } = paymentTraceIds('m', 'c')
  const header = formatTraceparent(traceId, rootSpanId)
  t.match(header, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
  t.same(parseTraceparent(header), { traceId, spanId: rootSpanId })
  t.equal(parseTraceparent(undefined), undefined)
  t.equal(parseTraceparent('garbage'), undefined)
  t.equal(parseTraceparent(`00-${'0'.repeat(32)}-${rootSpanId}-01`), undefined)
  t.equal(parseTraceparent(`00-${traceId}-${'0'.repeat(16)}-01`), undefined)
  t.equal(parseTraceparent(header.toUpperCase()), undefined, 'W3C ids are lowercase hex')
  t.end()
})

t.test('spans of one payment from two processes form one tree, read back as a waterfall', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'traces-'))
  const node = createPaymentTracer({ service: 'payment-svc', dir })
  const processor = createPaymentTracer({ service: 'processor', dir: join(dir), limits: {} })
  const payment = { merchantId: 'm_t', checkoutId: 'co_t' }
  const { traceId, rootSpanId } = node.ids(payment)
  const t0 = Date.now()
  node.record({ name: 'POST /payments', kind: 'server', payment, startMs: t0, endMs: t0 + 5, root: true, attributes: { 'ringpay.batch.size': 3 } })
  const consume = processor.newSpanId()
  await processor.within(traceId, consume, async () => {
    processor.record({ name: 'psp charge', kind: 'client', payment, startMs: t0 + 7, endMs: t0 + 9, errorType: 'psp_timeout' })
    // Another payment's scope is no parent of this one's span.
    processor.record({ name: 'other', kind: 'internal', payment: { merchantId: 'm_t', checkoutId: 'other' }, startMs: t0, endMs: t0 + 1 })
  })
  processor.record({ name: 'process payment.created', kind: 'consumer', payment, spanId: consume, parentSpanId: rootSpanId, startMs: t0 + 6, endMs: t0 + 10 })
  await node.shutdown()
  await processor.shutdown()
  // Two processes in one test: one pid, so two tracers of different services.
  const files = readdirSync(dir).sort()
  t.same(files, [`payment-svc-${process.pid}.jsonl`, `processor-${process.pid}.jsonl`])
  for (const f of files) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`)
  const line = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8').split('\n')[0]!)
  t.equal(line.resourceSpans[0].scopeSpans[0].spans[0].traceId, traceId, 'OTLP/JSON: hex ids')

  const spans = await readPaymentTrace(dir, 'm_t', 'co_t')
  t.equal(spans.length, 3)
  const rows = waterfall(spans)
  t.same(rows.map((r) => [r.span.name, r.span.service, r.depth]), [
    ['POST /payments', 'payment-svc', 0],
    ['process payment.created', 'processor', 1],
    ['psp charge', 'processor', 2],
  ])
  t.equal(rows[0]!.span.spanId, rootSpanId, 'the accept span is the derived root')
  t.equal(rows[0]!.span.attributes['ringpay.batch.size'], 3)
  t.equal(rows[2]!.span.error, true)
  t.equal(rows[2]!.span.attributes['error.type'], 'psp_timeout')
  t.ok(Math.abs(rows[1]!.offsetMs - 6) < 0.01, 'offsets from the first span, in ms')
  t.ok(Math.abs(rows[1]!.durationMs - 4) < 0.01)
  t.match(formatWaterfall(rows), /process payment\.created\s+processor/)
  t.same(await readTrace(dir, paymentTraceIds('nobody', 'none').traceId), [])
})

t.test('the exporter rotates a file before it passes fileBytesMax, keeping one previous file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'traces-'))
  const fileBytesMax = 4096
  const tracer = createPaymentTracer({ service: 'svc', dir, limits: { traceFileBytesMax: fileBytesMax, exportBatchSpansMax: 2, spanQueueSpansMax: 64 } })
  for (let i = 0; i < 60; i++) {
    const now = Date.now()
    tracer.record({ name: `span ${i}`, kind: 'internal', payment: { merchantId: 'm', checkoutId: `c${i}` }, startMs: now, endMs: now + 1 })
    if (i % 2 === 1) await tracer.flush()
  }
  await tracer.shutdown()
  t.ok(tracer.exporter.rotations >= 2, `rotated (${tracer.exporter.rotations} times)`)
  const files = readdirSync(dir).sort()
  t.same(files, [`svc-${process.pid}.1.jsonl`, `svc-${process.pid}.jsonl`], 'the current file and one rotated file, no more')
  for (const f of files) t.ok(statSync(join(dir, f)).size <= fileBytesMax, `${f} within ${fileBytesMax} bytes`)
  // The newest spans are readable, from either file.
  t.equal((await readPaymentTrace(dir, 'm', 'c59')).length, 1)
})

t.test('the exporter refuses an export after shutdown', async (t) => {
  const exporter = new TraceFileExporter({ dir: mkdtempSync(join(tmpdir(), 'traces-')), baseName: 'x', fileBytesMax: 100 })
  await exporter.shutdown()
  const result = await new Promise<{ code: number }>((resolve) => exporter.export([], resolve))
  t.equal(result.code, 1, 'FAILED')
})

t.test('tracing off: startTracing is a no-op and the SDK is never loaded', async (t) => {
  t.equal(await startTracing('svc', {}), undefined)
  // A fresh process that records every module it resolves, then starts tracing as `env` says.
  const loadedWith = (env: Record<string, string>): string[] => {
    const script = `
      import { registerHooks } from 'node:module'
      const seen = []
      registerHooks({ resolve (specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r } })
      const { startTracing } = await import(${JSON.stringify(new URL('../tracing.ts', import.meta.url).href)})
      const tracer = await startTracing('svc', ${JSON.stringify(env)})
      await tracer?.shutdown()
      process.stdout.write(JSON.stringify(seen))
    `
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
    t.equal(run.status, 0, run.stderr)
    return JSON.parse(run.stdout) as string[]
  }
  const off = loadedWith({})
  t.ok(off.some((url) => url.endsWith('/lib/tracing.ts')), 'the switch itself was loaded (the hook sees imports)')
  t.same(off.filter((url) => url.includes('opentelemetry') || url.includes('tracing-sdk')), [], 'off: no OpenTelemetry module loaded')
  const on = loadedWith({ RINGPAY_TRACING: '1', RINGPAY_TRACES_DIR: mkdtempSync(join(tmpdir(), 'traces-')) })
  t.ok(on.some((url) => url.includes('@opentelemetry/sdk-trace')), 'on: the SDK is loaded (so the check above can fail)')
  await t.rejects(startTracing('svc', { RINGPAY_TRACING: '1' }), /RINGPAY_TRACES_DIR/, 'on without a directory is a configuration error')
})

t.test('pruning a traces dir keeps the newest files within its byte limit', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'traces-'))
  const nowS = Date.now() / 1000
  // Four files of 100 bytes, a-…, d- from oldest to newest, and one that is not a trace file.
  for (const [i, name] of ['a-1.jsonl', 'b-2.1.jsonl', 'c-3.jsonl', 'd-4.jsonl'].entries()) {
    writeFileSync(join(dir, name), 'x'.repeat(100))
    utimesSync(join(dir, name), nowS - 100 + i, nowS - 100 + i)
  }
  writeFileSync(join(dir, 'notes.txt'), 'y'.repeat(1000))
  t.same(pruneTraceFiles(dir, 250).sort(), ['a-1.jsonl', 'b-2.1.jsonl'])
  t.same(readdirSync(dir).sort(), ['c-3.jsonl', 'd-4.jsonl', 'notes.txt'], 'the two newest kept, other files untouched')
  t.same(pruneTraceFiles(dir, 250), [], 'within the limit: nothing more')
  t.end()
})
