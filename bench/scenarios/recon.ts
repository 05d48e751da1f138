// The `recon` scenario: builds a large settlement day (the reconciler's generator,
// bench/recon-generate.ts: N succeeded charges at the sandbox PSP and their payments rows in
// Postgres) and times the reconciler over it, --runs times (a rerun replaces the result, as
// finance's reruns do). Every generated charge must come out `matched`: a discrepancy on a clean
// day is a reconciler bug and makes the exit code 1. See bench/README.md.

import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { pinnedNodeBinary, repoRoot } from '../../scripts/stack/util.ts'
import { intFlag, UsageError } from '../lib/args.ts'
import { renderChart } from '../lib/chart.ts'
import { describeMachine } from '../lib/machine.ts'
import type { Scenario } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import { formatInt, renderTable } from '../lib/table.ts'

export const defaultCount = 1_000_000
export const countMax = 5_000_000
export const defaultRuns = 3
export const runsMax = 20
/** The reconciler issue's target for a million-charge day, reported (never asserted). */
export const targetDayS = 60
export const targetCount = 1_000_000

const usage = `usage: node bench/cli.ts recon [flags]

Builds a settlement day of N succeeded charges (PSP side and our payments rows) and times the
reconciler over it. Prints a table; writes results.json, chart.svg and table.txt under
bench/results/<timestamp>-recon/. Exit 1 if a run fails or a clean day shows a discrepancy.

  --count <n>            charges in the day (default ${formatInt(defaultCount)})
  --runs <n>             reconciler runs over the same day (default ${defaultRuns})
  --date <YYYY-MM-DD>    the settlement day (default 2031-06-15; a day must hold only this run's charges)
  --heap-mb <n>          cap the reconciler's V8 heap (--max-old-space-size), to show its memory bound
  --stack-info <file>    use a running stack's Postgres and PSP (default: its own, in a temp dir)
  --out <dir>            results root (default bench/results)
`

interface RunFigures {
  exit_code: number
  wall_ms: number
  reconcile_ms?: number
  phases_ms?: Record<string, number>
  peak_rss_mb?: number
  counts?: Record<string, number>
  psp_rows?: number
}

interface GeneratorFigures {
  date: string
  count: number
  generate_ms: number
  vacuum_analyze_ms: number
  reconcile: RunFigures[]
}

function runGenerator (args: string[]): Promise<{ code: number, figures: GeneratorFigures | undefined }> {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(pinnedNodeBinary(), [join(repoRoot, 'bench', 'recon-generate.ts'), ...args], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'],
    })
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.once('error', rejectRun)
    child.once('exit', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? ''
      let figures: GeneratorFigures | undefined
      try {
        figures = JSON.parse(last) as GeneratorFigures
      } catch {
        figures = undefined
      }
      resolveRun({ code: code ?? 1, figures })
    })
  })
}

async function run (argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string' },
      runs: { type: 'string' },
      date: { type: 'string' },
      'heap-mb': { type: 'string' },
      'stack-info': { type: 'string' },
      out: { type: 'string' },
    },
  })
  const count = intFlag('--count', v.count, defaultCount, 1, countMax)
  const runs = intFlag('--runs', v.runs, defaultRuns, 1, runsMax)
  const heapMb = v['heap-mb'] === undefined ? undefined : intFlag('--heap-mb', v['heap-mb'], 0, 16, 65_536)
  const outDir = resolve(v.out ?? join(repoRoot, 'bench', 'results'))
  const startedAt = new Date()
  if (v.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(v.date)) throw new UsageError('--date must be YYYY-MM-DD')
  const args = ['--count', String(count), '--reconcile', '--runs', String(runs), ...(v.date !== undefined ? ['--date', v.date] : []),
    ...(v['stack-info'] !== undefined ? ['--stack-info', resolve(v['stack-info'])] : []),
    ...(heapMb !== undefined ? [`--reconcile-node-flags=--max-old-space-size=${heapMb}`] : [])]
  const { code, figures } = await runGenerator(args)
  if (figures === undefined) {
    process.stderr.write(`recon: the generator exited ${code} without figures\n`)
    return 1
  }
  const problems: string[] = []
  figures.reconcile.forEach((r, i) => {
    if (r.exit_code !== 0) problems.push(`run ${i + 1}: reconciler exit code ${r.exit_code}`)
    const counts = r.counts ?? {}
    const discrepancies = Object.entries(counts).filter(([c, n]) => c !== 'matched' && c !== 'pending_settlement' && n > 0)
    if ((counts.matched ?? 0) !== count) problems.push(`run ${i + 1}: matched ${counts.matched ?? 0} of ${count}`)
    for (const [c, n] of discrepancies) problems.push(`run ${i + 1}: ${n} ${c} on a clean day`)
  })
  const seconds = figures.reconcile.map((r) => (r.reconcile_ms ?? r.wall_ms) / 1000)
  const medianS = median(seconds)
  const peakRssMb = Math.max(...figures.reconcile.map((r) => r.peak_rss_mb ?? 0))
  const perSecond = count / medianS
  const table = [
    `recon: a day of ${formatInt(count)} succeeded charges (${figures.date}), ${runs} run(s)${heapMb !== undefined ? `, heap capped at ${heapMb} MB` : ''}`,
    '',
    renderTable(['run', 'reconcile s', 'wall s', 'peak RSS MB', 'PSP rows', 'matched', 'phases ms'], figures.reconcile.map((r, i) => [
      String(i + 1),
      ((r.reconcile_ms ?? r.wall_ms) / 1000).toFixed(1),
      (r.wall_ms / 1000).toFixed(1),
      String(r.peak_rss_mb ?? '?'),
      formatInt(r.psp_rows ?? 0),
      formatInt(r.counts?.matched ?? 0),
      Object.entries(r.phases_ms ?? {}).map(([k, ms]) => `${k} ${formatInt(ms)}`).join(', '),
    ])),
    '',
    `generate + COPY: ${(figures.generate_ms / 1000).toFixed(1)} s; VACUUM ANALYZE ${(figures.vacuum_analyze_ms / 1000).toFixed(1)} s`,
    `median ${medianS.toFixed(1)} s (${formatInt(Math.round(perSecond))} charges/s), peak RSS ${peakRssMb} MB`,
    `target (< ${targetDayS} s for ${formatInt(targetCount)} charges): ${count >= targetCount ? (medianS < targetDayS ? 'met' : 'NOT met') : `not measured (count < ${formatInt(targetCount)})`}`,
    `outcome: ${problems.length === 0 ? `every charge matched in every run → PASS` : `FAIL: ${problems.slice(0, 10).join('; ')}`}`,
  ].join('\n')
  process.stdout.write(`\n${table}\n`)
  const resultsDir = join(outDir, `${startedAt.toISOString().replaceAll(':', '-').slice(0, 19)}-recon`)
  mkdirSync(resultsDir, { recursive: true })
  writeFileSync(join(resultsDir, 'table.txt'), `${table}\n`)
  writeFileSync(join(resultsDir, 'results.json'), JSON.stringify({
    scenario: 'recon', startedAt, count, runs, heapMb: heapMb ?? null, machine: describeMachine('nginx', 'wrk'),
    generator: figures, medianS, chargesPerSecond: perSecond, peakRssMb, problems, passed: problems.length === 0,
  }, null, 2) + '\n')
  writeFileSync(join(resultsDir, 'chart.svg'), renderChart({
    title: `recon: ${formatInt(count)} charges`,
    subtitle: `median ${medianS.toFixed(1)} s, peak RSS ${peakRssMb} MB`,
    xLabel: 'run',
    bars: {
      title: 'reconcile time per run',
      unit: 's',
      items: seconds.map((s, i) => ({ label: `run ${i + 1}`, color: '#1f77b4', value: Math.round(s * 10) / 10, note: `${figures.reconcile[i]?.peak_rss_mb ?? '?'} MB` })),
    },
    panels: [],
    legend: [],
  }))
  process.stdout.write(`results: ${relative(process.cwd(), resultsDir) || resultsDir}\n`)
  return code === 0 && problems.length === 0 ? 0 : 1
}

export const scenario: Scenario = {
  name: 'recon',
  summary: 'builds a large settlement day and times the reconciler over it',
  usage,
  run,
}
