// The `reporting` scenario (issue #15): a day of N payments of one merchant in Postgres, then the
// reporting API through nginx as a merchant would use it: the first page, pages deep in the day
// (starting_after a random payment), a filtered page (one hour, one status), and the whole day as
// one CSV export, with the reporting service's peak memory during it. Reports p50/p99 per kind of
// page against the issue's target (p99 of one page ≤ 50 ms on a day of 1,000,000); never asserts.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { request } from 'undici'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { callControl } from '../../scripts/stack/control-client.ts'
import { spawnStack, type SpawnedStack } from '../../scripts/stack/spawn-stack.ts'
import { repoRoot } from '../../scripts/stack/util.ts'
import { intFlag } from '../lib/args.ts'
import { describeMachine } from '../lib/machine.ts'
import type { Scenario } from '../lib/scenario.ts'
import { percentileSorted } from '../lib/stats.ts'
import { formatInt, renderTable } from '../lib/table.ts'
import { trustCaFile } from '../../scripts/stack/trust-ca.ts'

export const defaultCount = 1_000_000
export const countMax = 5_000_000
export const defaultPages = 300
/** The issue's target, reported: p99 of one page on a day of 1,000,000 payments. */
export const targetPageP99Ms = 50
const merchantId = 'merchant_demo'
/** A day no other run writes to: the rows are this scenario's alone. */
const day = '2031-07-01'
const nextDay = '2031-07-02'
const requestTimeoutMs = 600_000
const rssSampleIntervalMs = 100

const usage = `usage: node bench/cli.ts reporting [flags]

Writes a day (${day}) of N payments of ${merchantId} into Postgres, then times the reporting API
through nginx: the first page, pages deep in the day (starting_after a random payment), one hour
of one status, each limit=100, one request at a time; then the whole day as one CSV export, with
the reporting service's peak RSS. Writes results.json and table.txt under
bench/results/<timestamp>-reporting/.

  --count <n>            payments in the day (default ${formatInt(defaultCount)})
  --pages <n>            pages timed per kind (default ${defaultPages})
  --stack-info <file>    use a running stack (its day ${day} must hold only this scenario's rows)
  --out <dir>            results root (default bench/results)
`

async function generate (adminUrl: string, count: number): Promise<{ generateMs: number, analyzeMs: number }> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    // A previous run's rows (their ids are this scenario's alone).
    await client.query("DELETE FROM payments WHERE merchant_id = $1 AND checkout_id LIKE 'rb-%'", [merchantId])
    const startedAt = performance.now()
    // Spread over the day; 90 % succeeded, 8 % failed, 2 % canceled, as a merchant's day looks.
    await client.query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method,
        psp_reference, failure_code, failure_message, created_at, updated_at)
      SELECT 'rb-' || lpad(i::text, 8, '0'), $1, 'n1', 100 + (i % 50000), 'EUR',
        CASE WHEN i % 50 = 0 THEN 'canceled' WHEN i % 12 = 0 THEN 'failed' ELSE 'succeeded' END,
        3, 'pm_bench', CASE WHEN i % 12 = 0 OR i % 50 = 0 THEN NULL ELSE 'ch_' || md5(i::text) END,
        CASE WHEN i % 12 = 0 AND i % 50 <> 0 THEN 'card_declined' END,
        CASE WHEN i % 12 = 0 AND i % 50 <> 0 THEN 'The card was declined' END,
        t, t + interval '150 milliseconds'
      FROM generate_series(1, $2::int) AS i, LATERAL (SELECT $3::date + ((i - 1)::float8 / $2::int) * interval '1 day' AS t) AS at`,
    [merchantId, count, day])
    const generateMs = performance.now() - startedAt
    const analyzedAt = performance.now()
    await client.query('VACUUM ANALYZE payments')
    return { generateMs, analyzeMs: performance.now() - analyzedAt }
  } finally {
    await client.end()
  }
}

async function timedGet (url: string, key: string): Promise<{ ms: number, status: number, body: any }> {
  const startedAt = performance.now()
  const res = await request(url, { headers: { authorization: `Bearer ${key}` }, headersTimeout: requestTimeoutMs, bodyTimeout: requestTimeoutMs })
  const text = await res.body.text()
  return { ms: performance.now() - startedAt, status: res.statusCode, body: text.startsWith('{') ? JSON.parse(text) : text }
}

interface PageFigures { kind: string, pages: number, p50Ms: number, p99Ms: number, maxMs: number, rowsPerPage: number, failures: number }

async function timePages (kind: string, pages: number, url: (i: number) => string, key: string): Promise<PageFigures> {
  const latencies: number[] = []
  let rows = 0
  let failures = 0
  for (let i = 0; i < pages; i++) {
    const r = await timedGet(url(i), key)
    if (r.status !== 200 || r.body.object !== 'list') failures++
    else rows += r.body.data.length
    latencies.push(r.ms)
  }
  latencies.sort((a, b) => a - b)
  return { kind, pages, p50Ms: percentileSorted(latencies, 50), p99Ms: percentileSorted(latencies, 99), maxMs: latencies.at(-1)!, rowsPerPage: rows / Math.max(1, pages - failures), failures }
}

/** VmRSS of a process now, and its peak (VmHWM), in MB. */
function rssMb (pid: number): { rss: number, hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN)
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
}

async function run (argv: string[]): Promise<number> {
  const { values: v } = parseArgs({ args: argv, options: { count: { type: 'string' }, pages: { type: 'string' }, 'stack-info': { type: 'string' }, out: { type: 'string' } } })
  const count = intFlag('--count', v.count, defaultCount, 1_000, countMax)
  const pages = intFlag('--pages', v.pages, defaultPages, 10, 100_000)
  const outDir = resolve(v.out ?? join(repoRoot, 'bench', 'results'))
  const startedAt = new Date()
  let own: SpawnedStack | undefined
  if (v['stack-info'] === undefined) own = await spawnStack({ args: ['--nodes', '1'], log: (line) => process.stderr.write(`[reporting] ${line}\n`) })
  const stack = own?.info ?? JSON.parse(readFileSync(v['stack-info']!, 'utf8')) as StackInfo
  trustCaFile(stack.publicCaFile)
  try {
    process.stderr.write(`[reporting] writing ${formatInt(count)} payments of ${merchantId} on ${day}\n`)
    const { generateMs, analyzeMs } = await generate(stack.databaseUrl, count)
    const key = stack.apiKeys.merchant_demo
    const base = `${stack.publicUrl}/payments?limit=100`
    const range = `created%5Bgte%5D=${day}&created%5Blt%5D=${nextDay}`
    // A fixed spread of cursors through the day (deterministic, so runs compare).
    const cursor = (i: number): string => `rb-${String(1 + Math.floor(((i * 7919) % pages) / pages * (count - 200))).padStart(8, '0')}`
    const hour = (i: number): string => {
      const h = String(i % 24).padStart(2, '0')
      return `created%5Bgte%5D=${day}T${h}:00:00Z&created%5Blt%5D=${day}T${h}:59:59.999Z`
    }
    // Warm the service, the pool's prepared statements and Postgres' cache as a day of use would.
    await timePages('warm-up', 20, (i) => `${base}&${range}&starting_after=${cursor(i)}`, key)
    const figures = [
      await timePages('first page of the day', pages, () => `${base}&${range}`, key),
      await timePages('deep page (starting_after)', pages, (i) => `${base}&${range}&starting_after=${cursor(i)}`, key),
      await timePages('one hour, status=failed', pages, (i) => `${base}&status=failed&${hour(i)}`, key),
    ]
    const { services } = await callControl<{ services: { name: string, pid: number | null }[] }>(stack, '/services', 'GET')
    const reportingPid = services.find((s) => s.name === 'reporting')?.pid ?? undefined
    const before = reportingPid === undefined ? undefined : rssMb(reportingPid)
    let peakRss = before?.rss ?? Number.NaN
    const sampler = setInterval(() => { if (reportingPid !== undefined) peakRss = Math.max(peakRss, rssMb(reportingPid).rss) }, rssSampleIntervalMs)
    const exportStartedAt = performance.now()
    const exported = await timedGet(`${stack.publicUrl}/reports/payments.csv?${range}`, key)
    const exportMs = performance.now() - exportStartedAt
    clearInterval(sampler)
    const csv = typeof exported.body === 'string' ? exported.body : ''
    const exportRows = csv.length === 0 ? 0 : csv.split('\n').length - 2
    const problems: string[] = []
    for (const f of figures) if (f.failures > 0) problems.push(`${f.kind}: ${f.failures} failed pages`)
    if (exported.status !== 200) problems.push(`export answered ${exported.status}`)
    else if (exportRows !== count) problems.push(`export held ${exportRows} rows, not ${count}`)
    const worstP99 = Math.max(...figures.map((f) => f.p99Ms))
    const table = [
      `reporting: a day of ${formatInt(count)} payments of one merchant; ${pages} pages of 100 per kind, one request at a time, through nginx`,
      '',
      renderTable(['page', 'p50 ms', 'p99 ms', 'max ms', 'rows/page'], figures.map((f) => [f.kind, f.p50Ms.toFixed(1), f.p99Ms.toFixed(1), f.maxMs.toFixed(1), f.rowsPerPage.toFixed(0)])),
      '',
      `export of the day: ${formatInt(exportRows)} rows, ${(csv.length / 1e6).toFixed(1)} MB in ${(exportMs / 1000).toFixed(1)} s ` +
        `(${formatInt(Math.round(exportRows / (exportMs / 1000)))} rows/s); reporting service RSS ${before?.rss.toFixed(0) ?? '?'} MB before, peak ${peakRss.toFixed(0)} MB during`,
      `generate: ${(generateMs / 1000).toFixed(1)} s; VACUUM ANALYZE ${(analyzeMs / 1000).toFixed(1)} s`,
      `target (p99 of one page ≤ ${targetPageP99Ms} ms on ${formatInt(defaultCount)} payments): ${count >= defaultCount ? (worstP99 <= targetPageP99Ms ? 'met' : 'NOT met') : `not measured (count < ${formatInt(defaultCount)})`} (worst p99 ${worstP99.toFixed(1)} ms)`,
      `outcome: ${problems.length === 0 ? 'every page and the export complete → PASS' : `FAIL: ${problems.join('; ')}`}`,
    ].join('\n')
    process.stdout.write(`\n${table}\n`)
    const resultsDir = join(outDir, `${startedAt.toISOString().replaceAll(':', '-').slice(0, 19)}-reporting`)
    mkdirSync(resultsDir, { recursive: true })
    writeFileSync(join(resultsDir, 'table.txt'), `${table}\n`)
    writeFileSync(join(resultsDir, 'results.json'), JSON.stringify({
      scenario: 'reporting', startedAt, count, pages, machine: describeMachine('nginx', 'wrk'), generateMs, analyzeMs, figures,
      export: { rows: exportRows, bytes: csv.length, ms: exportMs, rssBeforeMb: before?.rss ?? null, rssPeakMb: peakRss }, worstP99Ms: worstP99, problems,
    }, null, 2) + '\n')
    process.stdout.write(`results: ${relative(process.cwd(), resultsDir) || resultsDir}\n`)
    return problems.length === 0 ? 0 : 1
  } finally {
    await own?.stop()
  }
}

export const scenario: Scenario = { name: 'reporting', summary: 'a day of 1,000,000 payments: page latency and a whole-day CSV export through the reporting API', usage, run }
