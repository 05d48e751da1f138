// End-to-end probe (until bench/cli.ts has its `e2e` scenario): a fixed arrival rate of payments
// through a running stack, then accepted → terminal-in-Postgres latency for every acknowledged one.
//
//   node bench/e2e-probe.ts --stack-info <info.json> [--rate 500] [--duration 20]
//                           [--psp-latency-median-ms 50] [--psp-latency-p99-ms 200]
//
// Latency per payment = payments.projected_at (when its terminal state reached Postgres) minus
// payments.created_at (when its node accepted it). Every acknowledged payment must reach a
// terminal state within the settle deadline; missing ones are reported and fail the run.

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { request } from 'undici'
import type { StackInfo } from '../scripts/stack/info.ts'
import { runOpenLoop } from './lib/open-loop.ts'

const settleDeadlineMs = 120_000
const settlePollIntervalMs = 500
const connectionsMax = 64
const inflightMax = 2_000

const { values } = parseArgs({
  options: {
    'stack-info': { type: 'string' },
    rate: { type: 'string', default: '500' },
    duration: { type: 'string', default: '20' },
    'psp-latency-median-ms': { type: 'string', default: '50' },
    'psp-latency-p99-ms': { type: 'string', default: '200' },
  },
})
if (!values['stack-info']) {
  console.error('--stack-info <info.json> is required (start a stack: node scripts/stack.ts --ephemeral --info-file <path>)')
  process.exit(2)
}
const stack = JSON.parse(readFileSync(values['stack-info'], 'utf8')) as StackInfo
const rateRps = Number(values.rate)
const durationS = Number(values.duration)

async function pspConfig (patch: Record<string, unknown>): Promise<void> {
  const res = await request(`${stack.psp.url}/admin/config`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.psp.secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  })
  if (res.statusCode !== 200) throw new Error(`psp config: ${res.statusCode} ${await res.body.text()}`)
  await res.body.dump()
}

await pspConfig({ latencyMedianMs: Number(values['psp-latency-median-ms']), latencyP99Ms: Number(values['psp-latency-p99-ms']) })
const idPrefix = `e2e_${Date.now().toString(36)}_`
console.error(`open loop: ${rateRps}/s for ${durationS} s through ${stack.publicUrl}`)
const load = await runOpenLoop({
  target: { origin: stack.publicUrl, apiKey: stack.apiKeys.merchant_demo, idPrefix },
  rateRps,
  durationS,
  connections: connectionsMax,
  inflightMax,
})
const acked = new Set(load.ackedIds)
console.error(`accepted ${acked.size} (${load.throughputRps.toFixed(0)}/s), accept p50 ${load.latencyMs.p50} ms p99 ${load.latencyMs.p99} ms; waiting for terminal states`)

const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 2 })
const deadline = Date.now() + settleDeadlineMs
let rows: Array<{ checkout_id: string, status: string, latency_ms: number }> = []
for (;;) {
  rows = (await pool.query(
    `SELECT checkout_id, status, EXTRACT(EPOCH FROM projected_at - created_at) * 1000 AS latency_ms FROM payments
     WHERE checkout_id LIKE $1 AND status IN ('succeeded', 'failed', 'canceled')`, [`${idPrefix}%`])).rows
  if (rows.length >= acked.size || Date.now() > deadline) break
  await new Promise((resolve) => setTimeout(resolve, settlePollIntervalMs))
}
await pool.end()
const latencies = rows.filter((r) => acked.has(r.checkout_id)).map((r) => Number(r.latency_ms)).sort((a, b) => a - b)
const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN
const missing = acked.size - latencies.length
console.log(JSON.stringify({
  rate_rps: rateRps,
  duration_s: durationS,
  accepted: acked.size,
  accept_throughput_rps: Math.round(load.throughputRps),
  accept_latency_ms: load.latencyMs,
  terminal_in_postgres: latencies.length,
  not_terminal_after_deadline: missing,
  e2e_latency_ms: { p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), max: Math.round(latencies.at(-1) ?? NaN) },
}, null, 2))
process.exit(missing === 0 ? 0 : 1)
