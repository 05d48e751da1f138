// The reconciler for finance: reconcile one UTC date or a whole month against the PSP settlement
// reports, store the results in Postgres, write CSV files and print a summary.
//
//   node reconciler/cli.ts --date 2031-03-01 [--psp sandbox|nimbus|all] [--out report.csv] [--include-matched] [--json] [--quiet]
//   node reconciler/cli.ts --month 2031-03   [...]
//
// Env: DATABASE_URL, PSP_BASE_URL, PSP_SECRET_KEY (the sandbox PSP); NIMBUS_BASE_URL, NIMBUS_API_KEY for Nimbus (issue #16).
// Exit codes: 0 clean (pending_settlement rows allowed), 1 discrepancies found, 2 error (bad
// arguments, PSP or Postgres unreachable, malformed or truncated report; nothing is stored for
// the run that failed). Progress goes to stderr; the summary to stdout. See reconciler/README.md.

import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { isDate, isMonth, monthDates } from './dates.ts'
import { ReconcileError } from './errors.ts'
import { createPool } from './db.ts'
import { reconcilerLimits as limits } from './limits.ts'
import { isPspName, knownPsps, reportSources, type PspName } from './psp-source.ts'
import { reconcileWithFollowUps, type Progress, type RunResult } from './reconcile.ts'
import { totalsPath, writeItemsCsv, writeTotalsCsv } from './report-files.ts'
import { exitCodeOf, exitCodes, jsonSummary, runLine, textSummary } from './summary.ts'

const usage = `usage: node reconciler/cli.ts (--date YYYY-MM-DD | --month YYYY-MM) [--psp sandbox|nimbus|all] [--out path.csv]
                              [--include-matched] [--json] [--quiet]
env: DATABASE_URL, PSP_BASE_URL, PSP_SECRET_KEY
exit: 0 clean, 1 discrepancies found, 2 error
`
const reportsDir = fileURLToPath(new URL('./reports/', import.meta.url))

function fail (message: string): never {
  throw new ReconcileError('bad_args', message)
}

interface Options {
  dates: string[]
  month: string | undefined
  psps: PspName[]
  out: string
  includeMatched: boolean
  json: boolean
  quiet: boolean
  databaseUrl: string
  pspBaseUrl: string
  pspSecretKey: string
}

export function parseCli (argv: string[], env: NodeJS.ProcessEnv, now = new Date()): Options | 'help' {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        date: { type: 'string' },
        month: { type: 'string' },
        psp: { type: 'string', default: 'sandbox' },
        out: { type: 'string' },
        'include-matched': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (error) {
    fail((error as Error).message)
  }
  if (values.help === true) return 'help'
  if ((values.date === undefined) === (values.month === undefined)) fail('give exactly one of --date YYYY-MM-DD or --month YYYY-MM')
  if (values.date !== undefined && !isDate(values.date)) fail(`--date ${JSON.stringify(values.date)} is not a date YYYY-MM-DD`)
  if (values.month !== undefined && !isMonth(values.month)) fail(`--month ${JSON.stringify(values.month)} is not a month YYYY-MM`)
  const psp = values.psp ?? 'sandbox'
  if (psp.length > limits.pspNameLengthMax || (psp !== 'all' && !isPspName(psp))) fail(`--psp must be one of ${[...knownPsps, 'all'].join(', ')}`)
  const dates = values.date !== undefined ? [values.date] : monthDates(values.month!)
  if (dates.length > limits.monthDaysMax) fail('too many dates') // a bug if it ever happens
  const missing = ['DATABASE_URL', 'PSP_BASE_URL', 'PSP_SECRET_KEY'].filter((name) => !env[name])
  if (missing.length > 0) fail(`missing environment: ${missing.join(', ')}`)
  // Issue #16: Nimbus' report needs its own base URL and API key.
  const nimbusConfigured = Boolean(env.NIMBUS_BASE_URL) && Boolean(env.NIMBUS_API_KEY)
  if (psp === 'nimbus' && !nimbusConfigured) fail('--psp nimbus needs NIMBUS_BASE_URL and NIMBUS_API_KEY')
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 15)
  return {
    dates,
    month: values.month,
    psps: psp === 'all' ? knownPsps.filter((name) => name !== 'nimbus' || nimbusConfigured) : [psp as PspName],
    out: values.out ?? join(reportsDir, `${psp}-${values.date ?? values.month}-${stamp}Z.csv`),
    includeMatched: values['include-matched'] === true,
    json: values.json === true,
    quiet: values.quiet === true,
    databaseUrl: env.DATABASE_URL!,
    pspBaseUrl: env.PSP_BASE_URL!,
    pspSecretKey: env.PSP_SECRET_KEY!,
  }
}

function progressLine (p: Progress): string {
  if (p.phase === 'download') return `${p.psp} ${p.date}: ${p.rows.toLocaleString('en-US')} rows streamed (${(p.bytes / 1e6).toFixed(1)} MB)`
  if (p.phase === 'classify') return `${p.psp} ${p.date}: report complete (${p.rows.toLocaleString('en-US')} rows); classifying`
  return `${p.psp} ${p.date}: storing items and totals`
}

async function run (options: Options): Promise<number> {
  const note = (line: string): void => {
    if (!options.quiet) process.stderr.write(`[reconciler] ${line}\n`)
  }
  const pool = createPool(options.databaseUrl)
  const sources = reportSources({ baseUrl: options.pspBaseUrl, secretKey: options.pspSecretKey }, process.env)
  try {
    // The current result of each (psp, date) asked for, and follow-ups of other dates.
    const current = new Map<string, RunResult>()
    const followUps: RunResult[] = []
    const asked = new Set(options.psps.flatMap((psp) => options.dates.map((d) => `${psp}/${d}`)))
    for (const psp of options.psps) {
      for (const date of options.dates) {
        note(`${psp} ${date}: reconciling`)
        const results = await reconcileWithFollowUps({ pool, source: sources.get(psp)!.source, onProgress: (p) => note(progressLine(p)) }, { psp, date, trigger: 'cli' })
        for (const result of results) {
          note(runLine(result))
          const key = `${result.psp}/${result.date}`
          if (asked.has(key)) current.set(key, result)
          else followUps.push(result)
        }
      }
    }
    const runs = [...current.values()].sort((a, b) => a.psp.localeCompare(b.psp) || a.date.localeCompare(b.date))
    const itemsRows = await writeItemsCsv(pool, runs, options.out, options.includeMatched)
    const totalsFile = totalsPath(options.out)
    await writeTotalsCsv(runs, totalsFile, options.month)
    const summary = {
      runs,
      followUps,
      month: options.month,
      itemsPath: options.out,
      itemsRows,
      totalsPath: totalsFile,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    }
    process.stdout.write(options.json ? jsonSummary(summary) : textSummary(summary))
    return exitCodeOf(runs)
  } finally {
    await Promise.allSettled([pool.end(), ...[...sources.values()].map((s) => s.close())])
  }
}

async function main (): Promise<number> {
  let options: Options | 'help'
  try {
    options = parseCli(process.argv.slice(2), process.env)
  } catch (error) {
    process.stderr.write(`reconciler: ${(error as Error).message}\n\n${usage}`)
    return exitCodes.error
  }
  if (options === 'help') {
    process.stdout.write(usage)
    return exitCodes.clean
  }
  try {
    return await run(options)
  } catch (error) {
    if (error instanceof ReconcileError) {
      process.stderr.write(`reconciler: ${error.message}\n`)
    } else {
      process.stderr.write(`reconciler: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    }
    return exitCodes.error
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // process.exit, not exitCode: an idle pool socket must not hold the process open.
  main().then((code) => process.exit(code), () => process.exit(exitCodes.error))
}
