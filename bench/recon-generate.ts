// Makes a settlement day for the reconciler benchmark, and optionally reconciles it:
//
//   node bench/recon-generate.ts --count 1000000 [--date 2031-06-15] [--reconcile [--runs 1]]
//                                [--stack-info <info.json>] [--seed 1] [--merchant m_bench]
//                                [--keep-temp] [--reconcile-node-flags=--max-old-space-size=48]
//
// 1. Services: with --stack-info (a running stack's info file: scripts/stack.ts --info-file) or
//    DATABASE_URL + PSP_BASE_URL + PSP_SECRET_KEY, those are used; otherwise it starts its own
//    Postgres (scripts/stack/postgres.ts) and sandbox PSP (createSandboxPsp) in a temp dir, runs
//    the migrations, and stops both at the end (the dir is removed unless --keep-temp).
// 2. PSP side: POST /admin/generate {date, count, reference_prefix: <unique>}: `count` succeeded
//    charges settling on the date, streamed back as NDJSON.
// 3. Our side: each generated charge becomes a `payments` row (status succeeded, same amount,
//    currency and psp_reference, updated_at = the PSP's succeeded time), bulk-loaded with COPY
//    while the PSP is still generating (bounded: one NDJSON batch at a time); then VACUUM (ANALYZE)
//    payments, as autovacuum would have long before a 02:00 run.
// 4. --reconcile: runs `node reconciler/cli.ts --date <date> --json` as a child process (--runs
//    times: reruns replace the result) and prints its time and peak RSS (--reconcile-node-flags=...:
//    flags for that child, e.g. a small heap to show the memory bound).
//
// Prints one JSON line of figures at the end.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { request } from 'undici'
import { migrate } from '../db/migrate.ts'
import { isDate } from '../reconciler/dates.ts'
import { createSandboxPsp } from '../scripts/stack/app-processes.ts'
import { pickFreePorts } from '../scripts/stack/ports.ts'
import { createPostgres } from '../scripts/stack/postgres.ts'
import type { StackInfo } from '../scripts/stack/info.ts'
import { pinnedNodeBinary, repoRoot } from '../scripts/stack/util.ts'

/** Generation answers stream for as long as the PSP writes (1M charges: ~10-35 s); silence past this is a failure. */
const generateBodyIdleTimeoutMs = 120_000
const generateHeadersTimeoutMs = 120_000
/** NDJSON lines of the PSP's answer buffered before a COPY write (one LevelDB batch is 10,000). */
const copyChunkRows = 5_000
const countMax = 5_000_000
/** The reconciler child: a million-row day takes well under a minute; give up after this. */
const reconcileTimeoutMs = 600_000

const usage = `usage: node bench/recon-generate.ts --count N [--date YYYY-MM-DD] [--reconcile [--runs 1]]
                                   [--stack-info info.json] [--seed 1] [--merchant m_bench] [--keep-temp]
                                   [--reconcile-node-flags=--max-old-space-size=48]
`

function say (message: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 23)} [recon-bench] ${message}\n`)
}

const { values: args } = parseArgs({
  options: {
    count: { type: 'string' },
    date: { type: 'string', default: '2031-06-15' },
    reconcile: { type: 'boolean', default: false },
    runs: { type: 'string', default: '1' },
    'stack-info': { type: 'string' },
    seed: { type: 'string', default: '1' },
    merchant: { type: 'string', default: 'm_bench' },
    'keep-temp': { type: 'boolean', default: false },
    'reconcile-node-flags': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
})
if (args.help === true) {
  process.stdout.write(usage)
  process.exit(0)
}
const count = Number(args.count)
const runs = Number(args.runs)
const seed = Number(args.seed)
if (!Number.isSafeInteger(count) || count < 1 || count > countMax || !isDate(args.date) ||
  !Number.isSafeInteger(runs) || runs < 1 || runs > 10 || !Number.isSafeInteger(seed) || seed < 0) {
  process.stderr.write(usage)
  process.exit(2)
}
const date = args.date

interface Services {
  databaseUrl: string
  pspUrl: string
  pspSecretKey: string
  stop: () => Promise<void>
}

async function ownServices (): Promise<Services> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-recon-bench-'))
  chmodSync(dir, 0o755) // Postgres runs as the postgres user when we are root
  const [pgPort, pspPort] = await pickFreePorts(2)
  const postgres = createPostgres({ dir: join(dir, 'postgres'), port: pgPort!, logFile: join(dir, 'postgres.log') })
  const pspSecretKey = `sk_bench_${randomBytes(12).toString('hex')}`
  const psp = createSandboxPsp({
    port: pspPort!,
    dataDir: join(dir, 'psp'),
    logFile: join(dir, 'psp.log'),
    secretKey: pspSecretKey,
    webhookSecret: `whsec_${randomBytes(12).toString('hex')}`,
    webhookBaseUrl: 'http://127.0.0.1:9', // generated charges send no webhooks
  })
  say(`starting Postgres and the sandbox PSP in ${dir}`)
  await Promise.all([postgres.start(), psp.start()])
  await migrate(postgres.databaseUrl)
  return {
    databaseUrl: postgres.databaseUrl,
    pspUrl: `http://127.0.0.1:${pspPort}`,
    pspSecretKey,
    stop: async () => {
      await Promise.allSettled([psp.stop(), postgres.external ? Promise.resolve() : postgres.stop()])
      if (args['keep-temp'] === true) say(`kept ${dir}`)
      else rmSync(dir, { recursive: true, force: true })
    },
  }
}

function givenServices (): Services | undefined {
  const infoFile = args['stack-info']
  if (infoFile !== undefined) {
    const info = JSON.parse(readFileSync(infoFile, 'utf8')) as StackInfo
    return { databaseUrl: info.databaseUrl, pspUrl: info.psp.url, pspSecretKey: info.psp.secretKey, stop: async () => {} }
  }
  const { DATABASE_URL, PSP_BASE_URL, PSP_SECRET_KEY } = process.env
  if (DATABASE_URL && PSP_BASE_URL && PSP_SECRET_KEY) {
    return { databaseUrl: DATABASE_URL, pspUrl: PSP_BASE_URL, pspSecretKey: PSP_SECRET_KEY, stop: async () => {} }
  }
  return undefined
}

interface Generated { reference: string, psp_reference: string, amount: number, currency: string, created: number }

/** Generates at the PSP and COPYs the matching payments rows as the batches arrive. */
async function generate (services: Services, prefix: string): Promise<{ rows: number, ms: number, vacuumMs: number }> {
  const t0 = performance.now()
  const client = new pg.Client({ connectionString: services.databaseUrl })
  await client.connect()
  try {
    await client.query('BEGIN')
    const copy = client.query(copyFrom(`COPY payments (checkout_id, merchant_id, node_id, amount, currency, status, version,
      payment_method, psp_reference, created_at, updated_at) FROM STDIN`))
    const copied = finished(copy)
    copied.catch(() => {})
    const res = await request(`${services.pspUrl}/admin/generate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${services.pspSecretKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ date, count, merchant_id: args.merchant, seed, reference_prefix: prefix }),
      headersTimeout: generateHeadersTimeoutMs,
      bodyTimeout: generateBodyIdleTimeoutMs,
    })
    if (res.statusCode !== 200) throw new Error(`POST /admin/generate answered ${res.statusCode}: ${(await res.body.text()).slice(0, 500)}`)
    let pending = ''
    let out = ''
    let buffered = 0
    let rows = 0
    let summary = false
    let lastSayMs = Date.now()
    const onLine = (line: string): void => {
      if (line === '') return
      const g = JSON.parse(line) as Generated & { object?: string }
      if (g.object === 'generation_summary') {
        summary = true
        return
      }
      const at = new Date(g.created * 1000).toISOString()
      out += `${g.reference}\t${args.merchant}\tbench\t${g.amount}\t${g.currency}\tsucceeded\t3\tpm_card_visa\t${g.psp_reference}\t${at}\t${at}\n`
      buffered++
      rows++
    }
    for await (const chunk of res.body) {
      const text = pending + (chunk as Buffer).toString('utf8')
      const lines = text.split('\n')
      pending = lines.pop()!
      for (const line of lines) onLine(line)
      if (buffered >= copyChunkRows) {
        if (!copy.write(out)) await once(copy, 'drain')
        out = ''
        buffered = 0
      }
      if (Date.now() - lastSayMs >= 5_000) {
        lastSayMs = Date.now()
        say(`${rows.toLocaleString('en')} charges generated and copied`)
      }
    }
    onLine(pending)
    if (!summary) throw new Error('the generation answer ended without its summary line: cut short')
    if (out !== '') copy.write(out)
    copy.end()
    await copied
    await client.query('COMMIT')
    const ms = Math.round(performance.now() - t0)
    // In production the day's rows arrive over hours and autovacuum has seen them by 02:00: set
    // hint bits, the visibility map and statistics now, so the reconcile does not pay for that.
    const v0 = performance.now()
    await client.query('VACUUM (ANALYZE) payments')
    return { rows, ms, vacuumMs: Math.round(performance.now() - v0) }
  } finally {
    await client.end()
  }
}

interface ReconcileFigures { exitCode: number, wallMs: number, summary: any }

async function reconcile (services: Services, outDir: string, run: number): Promise<ReconcileFigures> {
  const t0 = performance.now()
  const nodeFlags = args['reconcile-node-flags'].split(' ').filter((f) => f !== '')
  const child = spawn(pinnedNodeBinary(), [...nodeFlags, join(repoRoot, 'reconciler', 'cli.ts'), '--date', date, '--psp', 'sandbox', '--json',
    '--out', join(outDir, `recon-${date}-${run}.csv`)], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: services.databaseUrl, PSP_BASE_URL: services.pspUrl, PSP_SECRET_KEY: services.pspSecretKey },
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: reconcileTimeoutMs,
  })
  let stdout = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (s: string) => { stdout += s })
  const [code] = await once(child, 'exit') as [number | null]
  const wallMs = Math.round(performance.now() - t0)
  let summary: any
  try {
    summary = JSON.parse(stdout)
  } catch {
    summary = { unparsable: stdout.slice(0, 500) }
  }
  return { exitCode: code ?? -1, wallMs, summary }
}

const given = givenServices()
const services = given ?? await ownServices()
const outDir = mkdtempSync(join(tmpdir(), 'ringpay-recon-out-'))
let exitCode = 0
try {
  const prefix = `bench-${date}-${seed}-${randomBytes(4).toString('hex')}-`
  say(`generating ${count.toLocaleString('en')} succeeded charges for ${date} (prefix ${prefix}) and their payments rows`)
  const generated = await generate(services, prefix)
  say(`generated and copied ${generated.rows.toLocaleString('en')} in ${(generated.ms / 1000).toFixed(1)} s`)
  const figures: Record<string, unknown> = {
    date, count, generate_ms: generated.ms, vacuum_analyze_ms: generated.vacuumMs, services: given === undefined ? 'own' : 'given',
  }
  if (args.reconcile === true) {
    const runFigures = []
    for (let run = 1; run <= runs; run++) {
      say(`reconciling ${date} (run ${run} of ${runs})`)
      const r = await reconcile(services, outDir, run)
      say(`reconciled in ${(r.wallMs / 1000).toFixed(1)} s (exit ${r.exitCode}), peak RSS ${r.summary?.peak_rss_mb ?? '?'} MB`)
      runFigures.push({ exit_code: r.exitCode, wall_ms: r.wallMs, reconcile_ms: r.summary?.runs?.[0]?.duration_ms, phases_ms: r.summary?.runs?.[0]?.phases_ms,
        peak_rss_mb: r.summary?.peak_rss_mb, counts: r.summary?.runs?.[0]?.counts, psp_rows: r.summary?.runs?.[0]?.psp_rows })
      if (r.exitCode === 2) exitCode = 1
    }
    figures.reconcile_node_flags = args['reconcile-node-flags']
    figures.reconcile = runFigures
  }
  process.stdout.write(JSON.stringify(figures) + '\n')
} catch (error) {
  say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  exitCode = 1
} finally {
  rmSync(outDir, { recursive: true, force: true })
  await services.stop()
}
process.exit(exitCode)
