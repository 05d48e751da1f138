// The e2e, recon and reporting scenarios of bench/cli.ts, end to end on a tiny budget against the shared
// stack (--stack-info): they must run, write their results, and their outcome checks must cover
// every payment/charge and pass. ~40 s together.

import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { repoRoot } from '../../scripts/stack/util.ts'

const benchRunTimeoutMs = 120_000
const stackInfo = process.env.RINGPAY_STACK_INFO
if (stackInfo === undefined) throw new Error('RINGPAY_STACK_INFO is not set: run with scripts/test.sh')

function runCli (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bench', 'cli.ts'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const timer = setTimeout(() => child.kill('SIGTERM'), benchRunTimeoutMs)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function onlyResults (out: string): any {
  const dirs = readdirSync(out)
  if (dirs.length !== 1) throw new Error(`expected one results dir in ${out}, found ${dirs.join(', ')}`)
  return { dir: join(out, dirs[0]!), json: JSON.parse(readFileSync(join(out, dirs[0]!, 'results.json'), 'utf8')) }
}

t.test('e2e: every accepted payment terminal, equal on node, Postgres and PSP', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ringpay-bench-e2e-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const run = await runCli(['e2e', '--stack-info', stackInfo, '--rate', '20', '--duration', '2', '--mix', 'standard',
    '--psp-latency-median-ms', '10', '--psp-latency-p99-ms', '40', '--settle-deadline', '60', '--out', out])
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr.slice(-3000)}`)
  const { dir, json } = onlyResults(out)
  t.equal(json.accept.acked, 40, 'all 40 payments accepted')
  t.equal(json.endToEnd.terminal, 40, 'all 40 terminal in Postgres')
  t.ok(json.endToEnd.latencyMs.p50 > 0 && json.endToEnd.latencyMs.p99 >= json.endToEnd.latencyMs.p50, 'latency percentiles ordered')
  t.equal(json.outcome.passed, true, 'outcome check passed')
  t.equal(json.outcome.checked, 40, 'outcome check covered every accepted payment')
  t.ok(json.lag.samples.length >= 1, 'lag sampled')
  t.match(readFileSync(join(dir, 'chart.svg'), 'utf8'), /<svg [^>]*>/, 'chart written')
  t.match(run.stdout, /accepted → terminal p99/, 'table printed')
  t.equal(json.client.started, 40, 'a long-polling client per accepted payment')
  t.equal(json.client.finished, 40, 'every client saw its payment terminal')
  t.ok(json.client.polls >= 40, 'the clients long-polled')
  t.ok(json.client.latencyMs.p99 >= json.client.latencyMs.p50 && json.client.latencyMs.p50 > 0, 'client latency percentiles ordered')
  t.ok(json.endToEnd.stages['PSP call (first attempt sent → last answered)'].p50 >= 0, 'PSP call stage measured')
})

t.test('e2e --search: one step per target, Ringpay, the monolith and the async floor, every outcome check passes', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ringpay-bench-e2e-search-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  // The stack is shared with other tests: the PSP's webhook URL is left alone (ringpay).
  const run = await runCli(['e2e', '--stack-info', stackInfo, '--search', '--start-rate', '10', '--steps-max', '1', '--step-duration', '2', '--search-warmup', '1',
    '--psp-latency-median-ms', '10', '--psp-latency-p99-ms', '40', '--drain-deadline', '30', '--settle-deadline', '60',
    '--monolith-webhooks', 'ringpay', '--targets', 'ringpay,monolith,floor', '--out', out])
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr.slice(-3000)}`)
  const { dir, json } = onlyResults(out)
  t.equal(json.mode, 'search')
  t.same(json.steps.map((s: { target: string, rateRps: number }) => [s.target, s.rateRps]), [['ringpay', 10], ['monolith', 10], ['floor', 10]], 'interleaved, one step each, the warm-ups not among them')
  t.match(run.stderr, /warm-up: Ringpay at 10\/s for 1 s/, 'Ringpay warmed up first')
  t.match(run.stderr, /warm-up: monolith at 10\/s for 1 s/, 'the monolith too')
  for (const step of json.steps) {
    t.equal(step.sent, 20, `${step.target}: 20 payments sent`)
    t.equal(step.outcomePassed, true, `${step.target}: outcome check passed`)
    t.type(step.passed, 'boolean', `${step.target}: pass/fail reported`)
    t.ok(step.finished <= step.sent && step.finishedShare === step.finished / step.sent, `${step.target}: finished share`)
    t.type(step.cpu.ownMs, 'number', `${step.target}: own CPU per payment`)
    t.type(step.cpu.pspMs, 'number', `${step.target}: PSP CPU apart`)
    t.type(step.cpu.loadGeneratorMs, 'number', `${step.target}: load generator CPU apart`)
  }
  const [ringpay, monolith, floor] = json.steps
  t.equal(ringpay.outcome.checked, ringpay.outcome.acked, 'Ringpay outcome check covered every accepted payment')
  t.equal(ringpay.outcome.acked, 20)
  t.type(ringpay.postgresLatencyMs.p99, 'number', 'Postgres-terminal latency beside the client one')
  t.ok(Object.keys(ringpay.stages).length >= 6, 'per-stage latency')
  t.equal(monolith.outcome.rows, 20, 'a monolith row per payment')
  t.equal(monolith.outcome.doubleCharges, 0, 'one PSP charge per id')
  t.equal(monolith.outcome.mismatches, 0, 'monolith Postgres = PSP')
  t.equal(monolith.finished, 20, 'every monolith payment answered with its final status')
  t.ok(monolith.cpu.msPerPayment['monolith server'] > 0, 'the monolith server\'s CPU is measured')
  t.equal(floor.outcome.acked, 20, 'every floor payment accepted')
  t.equal(floor.outcome.lost + floor.outcome.doubleCharges + floor.outcome.mismatches, 0, 'floor: one charge per id, status = PSP')
  t.equal(floor.finished, 20, 'every floor payment seen final by its long-polling client')
  // Attributed, not necessarily above zero: 20 payments of the floor can take less than one 10 ms
  // clock tick of its server or its nginx (/proc's resolution).
  for (const component of ['floor server', 'floor nginx']) {
    t.ok(Number.isFinite(floor.cpu.msPerPayment[component]) && floor.cpu.msPerPayment[component] >= 0, `the ${component}'s CPU is accounted for`)
  }
  for (const target of ['ringpay', 'monolith', 'floor']) t.type(json.summary[target].maxSustainedRps, 'number', `${target}: max sustained reported`)
  t.ok(json.ratio === null || typeof json.ratio === 'number', 'ratio reported')
  t.ok(json.floorRatio === null || typeof json.floorRatio === 'number', 'floor ratio reported')
  t.type(json.goals.ratio.met, 'boolean', 'the issue target is reported, not asserted')
  t.equal(json.outcomesPassed, true)
  const svg = readFileSync(join(dir, 'chart.svg'), 'utf8')
  t.match(svg, /<polyline /, 'chart has lines')
  t.match(run.stdout, /Ringpay max sustained: /, 'table printed')
  t.match(run.stdout, /monolith max sustained: /, 'table printed')
  t.match(run.stdout, /async floor max sustained: /, 'table printed')
})

t.test('recon: a small clean day, every charge matched', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ringpay-bench-recon-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  // A day no other test uses (the generator's charges and rows are the day's only ones).
  const date = `2045-0${1 + Math.floor(Math.random() * 9)}-${String(10 + Math.floor(Math.random() * 18))}`
  const run = await runCli(['recon', '--stack-info', stackInfo, '--count', '3000', '--runs', '1', '--date', date, '--out', out])
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr.slice(-3000)}`)
  const { json } = onlyResults(out)
  t.equal(json.passed, true, 'no discrepancy')
  t.equal(json.generator.reconcile[0].counts.matched, 3000, 'all 3,000 matched')
  t.ok(json.medianS > 0, 'timed')
})

t.test('reporting: a small day, every page and the whole-day export complete', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ringpay-bench-reporting-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const run = await runCli(['reporting', '--stack-info', stackInfo, '--count', '3000', '--pages', '10', '--out', out])
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr.slice(-3000)}`)
  const { json } = onlyResults(out)
  t.same(json.problems, [], 'no failed page, the export complete')
  t.equal(json.export.rows, 3000, 'the export held the whole day')
  t.equal(json.figures.length, 3)
  for (const f of json.figures) t.ok(f.p99Ms > 0 && f.rowsPerPage > 0, `${f.kind}: timed, with rows`)
})
