// CPU per charge of the sandbox PSP process: starts `node <tree>/sandbox-psp/main.ts` as a child
// (one per tree given, one after the other, so an old checkout and the current one are compared in
// one run), with a webhook receiver stub in this process, sends open-loop charges at a fixed rate
// over keep-alive connections (as a processor does), waits until every answer and every webhook
// is in, and reports the child's CPU time (user + system, all its threads, from /proc) divided by
// the charges. The main thread and the other threads (libuv pool: LevelDB) are shown apart.
//
//   node sandbox-psp/bench/cpu-per-charge.ts [--rate 100] [--seconds 10] [--trees /work/main,/tmp/psp-old]
//       [--latency-median-ms 50] [--latency-p99-ms 200] [--connections 64] [--profile-dir DIR]
//
// `--profile-dir` runs the PSP under `node --cpu-prof` and prints the profile of the measured window
// (bench/lib/cpu-profile.ts; V8's timestamps and process.hrtime share CLOCK_MONOTONIC).
// Keep runs short: the machine is shared. Figures only compare within one run.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { renderProfileSummary, summarizeCpuProfileFile, type TimeWindowUs } from '../../bench/lib/cpu-profile.ts'
import { listeningPort } from '../listening-port.ts'

/** Kernel clock ticks per second (`getconf CLK_TCK`). */
const clockTicksPerS = 100
const startDeadlineMs = 15_000
/** After the last charge is sent: how long answers and webhooks may take to arrive. */
const drainDeadlineMs = 20_000
const pollIntervalMs = 20
/** Charges sent (and drained) before the measured window, so start-up and JIT warm-up stay out. */
const warmUpCharges = 200
const requestTimeoutMs = 10_000
const profileRows = 40
const secretKey = 'sk_bench_sandbox_0123456789'
const webhookSecret = 'whsec_bench_sandbox_0123456789'

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '10' },
    trees: { type: 'string', default: resolve(import.meta.dirname, '../..') },
    'latency-median-ms': { type: 'string', default: '50' },
    'latency-p99-ms': { type: 'string', default: '200' },
    connections: { type: 'string', default: '64' },
    'profile-dir': { type: 'string' },
  },
})
const rateRps = Number(args.rate)
const durationS = Number(args.seconds)
const connections = Number(args.connections)
if (!(rateRps > 0 && durationS > 0 && durationS <= 60 && connections > 0)) throw new Error('bad --rate, --seconds (≤ 60) or --connections')

/** CPU ticks of every thread of a process: the main thread (tid = pid) and all others. */
function threadTicks (pid: number): { main: number, others: number } {
  let main = 0
  let others = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(rest[11]) + Number(rest[12])
    if (Number(tid) === pid) main += ticks
    else others += ticks
  }
  return { main, others }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function until (probe: () => boolean, what: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(pollIntervalMs)
  }
}

interface Receiver { url: string, received: () => number, close: () => Promise<void> }

async function startReceiver (): Promise<Receiver> {
  let received = 0
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      received++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

async function spawnPsp (tree: string, dataDir: string, webhookUrl: string, profileDir: string | undefined): Promise<{ child: ChildProcess, url: string }> {
  const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]
  const child = spawn(process.execPath, [...nodeArgs, join(tree, 'sandbox-psp/main.ts')], {
    env: {
      ...process.env,
      RINGPAY_LOG_LEVEL: 'info',
      PSP_PORT: '0',
      PSP_DATA_DIR: dataDir,
      PSP_SECRET_KEY: secretKey,
      PSP_WEBHOOK_SECRET: webhookSecret,
      PSP_WEBHOOK_BASE_URL: webhookUrl,
      PSP_LATENCY_MEDIAN_MS: args['latency-median-ms'],
      PSP_LATENCY_P99_MS: args['latency-p99-ms'],
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await listeningPort(child, startDeadlineMs)
  return { child, url: `http://127.0.0.1:${port}` }
}

interface RunResult { tree: string, charges: number, failures: number, mainMs: number, othersMs: number, wallS: number, windowUs: TimeWindowUs }

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n)

/** Sends `count` charges open-loop at `rateRps`; resolves when every answer is in. Counts non-201s. */
async function sendCharges (pool: Pool, first: number, count: number, runId: string): Promise<number> {
  let failures = 0
  const pending: Array<Promise<void>> = []
  const startedAt = performance.now()
  for (let i = 0; i < count; i++) {
    const dueMs = (i * 1000) / rateRps
    const waitMs = dueMs - (performance.now() - startedAt)
    if (waitMs > 1) await sleep(waitMs)
    const reference = `bench-${runId}-${first + i}`
    const body = JSON.stringify({ amount: 1000 + (i % 9000), currency: 'EUR', payment_method: 'pm_card_visa', reference, merchant_id: 'm_bench' })
    pending.push(pool.request({
      path: '/v1/charges',
      method: 'POST',
      headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json', 'idempotency-key': reference },
      body,
      headersTimeout: requestTimeoutMs,
      bodyTimeout: requestTimeoutMs,
    }).then(async (res) => {
      await res.body.dump()
      if (res.statusCode !== 201) failures++
    }, () => { failures++ }))
  }
  await Promise.all(pending)
  return failures
}

async function measure (tree: string, profileDir: string | undefined): Promise<RunResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'psp-bench-'))
  const receiver = await startReceiver()
  const { child, url } = await spawnPsp(tree, dataDir, receiver.url, profileDir)
  const pool = new Pool(url, { connections, pipelining: 1 })
  const runId = Date.now().toString(36)
  try {
    const pid = child.pid!
    // Warm up, and wait until its webhooks are out: the window holds only the measured charges.
    await sendCharges(pool, 0, warmUpCharges, runId)
    await until(() => receiver.received() >= warmUpCharges, 'warm-up webhooks', drainDeadlineMs)
    const count = Math.round(rateRps * durationS)
    const before = threadTicks(pid)
    const startedAt = performance.now()
    const startedUs = monotonicUs()
    const failures = await sendCharges(pool, warmUpCharges, count, runId)
    await until(() => receiver.received() >= warmUpCharges + count - failures, 'webhooks of the measured charges', drainDeadlineMs)
    const after = threadTicks(pid)
    const wallS = (performance.now() - startedAt) / 1000
    const ms = (ticks: number): number => (ticks * 1000) / clockTicksPerS
    return { tree, charges: count, failures, mainMs: ms(after.main - before.main), othersMs: ms(after.others - before.others), wallS, windowUs: [startedUs, monotonicUs()] }
  } finally {
    await pool.close()
    child.kill('SIGTERM')
    await once(child, 'exit')
    await receiver.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const results: RunResult[] = []
for (const tree of args.trees.split(',')) {
  const profileDir = args['profile-dir'] === undefined ? undefined : mkdtempSync(join(resolve(args['profile-dir']), 'psp-'))
  const result = await measure(tree, profileDir)
  results.push(result)
  if (profileDir !== undefined) {
    for (const file of readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'))) {
      console.log(renderProfileSummary(summarizeCpuProfileFile(join(profileDir, file), profileRows, [result.windowUs]), `${tree}: ${join(profileDir, file)} (measured window)`))
    }
  }
}
console.log(`sandbox PSP CPU per charge: ${rateRps}/s for ${durationS} s, latency median ${args['latency-median-ms']} ms / p99 ${args['latency-p99-ms']} ms, ${connections} connections, webhooks on`)
console.log('| tree | charges | failed | wall s | main thread ms/charge | other threads ms/charge | total ms/charge | CPU % of a core |')
console.log('|---|---|---|---|---|---|---|---|')
for (const r of results) {
  const per = (ms: number): string => (ms / r.charges).toFixed(3)
  console.log(`| ${r.tree} | ${r.charges} | ${r.failures} | ${r.wallS.toFixed(1)} | ${per(r.mainMs)} | ${per(r.othersMs)} | ${per(r.mainMs + r.othersMs)} | ${((r.mainMs + r.othersMs) / 10 / r.wallS).toFixed(1)} |`)
}
if (results.length === 2) {
  const total = (r: RunResult): number => (r.mainMs + r.othersMs) / r.charges
  console.log(`ratio first / second: ${(total(results[0]!) / total(results[1]!)).toFixed(2)}×`)
}
