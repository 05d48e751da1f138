// The e2e and recon scenarios of bench/cli.ts, end to end on a tiny budget against the shared
// stack (--stack-info): they must run, write their results, and their outcome checks must cover
// every payment/charge and pass. ~20 s together.

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
