// Runs `bench/cli.ts accept` end to end on a tiny budget (1 s per target, one round, 8
// connections): real nginx, Postgres, wrk, no-op/naive servers and payment nodes, all started by
// the bench itself (no shared stack needed). Checks the results' shape and that the outcome check
// ran over every acknowledged id and passed. Needs nginx, postgres and wrk, which
// scripts/ensure-deps.sh installs (CI too), so it is never skipped. Typically 15–25 s.

import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { repoRoot } from '../../scripts/stack/util.ts'

/** The whole bench run, start-up and outcome check included. */
const benchRunTimeoutMs = 90_000

interface CliRun { code: number | null, stdout: string, stderr: string }

function runCli (args: string[], onTeardown: (fn: () => void) => void): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bench', 'cli.ts'), ...args], {
      cwd: repoRoot,
      // Always the bench's own temp Postgres, whatever the environment says.
      env: { ...process.env, DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    // SIGTERM lets the bench stop everything it started.
    const timer = setTimeout(() => child.kill('SIGTERM'), benchRunTimeoutMs)
    onTeardown(() => {
      clearTimeout(timer)
      if (child.exitCode === null) child.kill('SIGTERM')
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('accept: tiny closed-loop run of all four targets, outcome check passes', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ringpay-bench-test-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const run = await runCli(['accept', '--duration', '1', '--rounds', '1', '--connections', '8', '--warmup', '0', '--out', out],
    (fn) => t.teardown(fn))
  t.equal(run.code, 0, `exit code 0\n--- stdout\n${run.stdout}\n--- stderr (tail)\n${run.stderr.slice(-4000)}`)

  const dirs = readdirSync(out)
  t.equal(dirs.length, 1, 'one results dir')
  t.match(dirs[0], /^\d{8}-\d{6}-accept$/, 'named <timestamp>-accept')
  const dir = join(out, dirs[0] as string)
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'))

  t.equal(results.scenario, 'accept')
  t.equal(results.config.mode, 'closed')
  t.equal(results.config.connections, 8)
  t.type(results.machine.nproc, 'number')
  t.same(results.targets.map((x: { key: string }) => x.key), ['a', 'b', 'c', 'd'])
  t.equal(results.runs.length, 4, 'one run per target')
  for (const r of results.runs) {
    t.ok(r.responses > 0, `${r.target}: answers`)
    t.ok(r.throughputRps > 0, `${r.target}: throughput`)
    t.equal(r.non2xx, 0, `${r.target}: no non-2xx`)
    for (const p of ['p50', 'p99', 'p999']) t.ok(r.latencyMs[p] > 0, `${r.target}: ${p}`)
    t.ok(Array.isArray(r.series) && r.series.length === 1, `${r.target}: one second of series`)
    t.type(r.cpu?.machineBusyPct, 'number', `${r.target}: CPU accounting`)
    t.equal(r.acked, r.statusCounts['202'], `${r.target}: every 202 recorded with its id`)
  }
  for (const key of ['a', 'b', 'c', 'd']) {
    const s = results.summary[key]
    t.ok(s.throughputRps > 0, `summary ${key}: throughput`)
    t.ok(s.p99Ms >= s.p50Ms, `summary ${key}: p99 ≥ p50`)
  }
  t.type(results.summary.c.groupCommit?.meanBatchSize, 'number', '(c) group-commit figures from the nodes')
  t.type(results.ratios.cOverA, 'number')
  t.type(results.ratios.cOverB, 'number')
  t.type(results.ratios.dOverA, 'number')
  t.type(results.ratios.cOverD, 'number')
  t.equal(results.goals.length, 3, 'three issue targets reported')

  const c = results.outcome.c
  t.ok(c.acked > 0, '(c) acknowledged something')
  t.equal(c.checked, c.distinct, 'every acknowledged id of (c) was read back')
  t.equal(c.sampled, false)
  t.equal(c.lost, 0, 'nothing lost')
  t.equal(c.duplicated, 0, 'nothing duplicated')
  t.equal(c.checkErrors, 0)
  t.equal(c.passed, true)
  const store = results.outcome.cStore
  t.equal(store.checked, c.distinct, 'every acknowledged id looked up in the stores after shutdown')
  t.equal(store.lost, 0)
  t.equal(store.duplicated, 0)
  t.equal(store.passed, true)
  t.equal(Object.values(store.foundPerNode as Record<string, number>).reduce((a, b) => a + b, 0), c.distinct, 'each id on exactly one node')
  t.equal(results.outcome.b.lost, 0, '(b) lost nothing either')
  t.equal(results.passed, true)

  const svg = readFileSync(join(dir, 'chart.svg'), 'utf8')
  t.match(svg, /^<\?xml[^]*<svg[^]*<\/svg>\s*$/, 'chart is a standalone SVG')
  t.match(svg, /<polyline /, 'chart has lines')
  const table = readFileSync(join(dir, 'table.txt'), 'utf8')
  t.match(table, /outcome \(c\), live: .* lost 0, duplicated 0 → PASS/)
  t.match(table, /outcome \(c\), stores: .* lost 0, duplicated 0 → PASS/)
  t.equal(run.stdout.trim(), table.trim(), 'the printed table is table.txt')
  t.match(table, /\(c\)\/\(d\) throughput: \d\.\d{3}/, 'the probe comparison is reported')
  t.match(run.stderr, /round 1\/1 \(c\) ringpay/, 'progress on stderr')
  t.match(run.stderr, /round 1\/1 \(d\) probe/, 'the probe ran')
})

t.test('accept: unknown flags are a usage error (exit 2)', async (t) => {
  const run = await runCli(['accept', '--no-such-flag'], (fn) => t.teardown(fn))
  t.equal(run.code, 2)
  t.match(run.stderr, /usage: node bench\/cli\.ts accept/)
})
