// What the CLI prints: a text summary for people, or (--json) one JSON object for scripts.
// Money is printed in integer minor units of its currency, never converted.

import { discrepancyClasses, emptyCounts, itemClasses, type ClassCounts } from './classes.ts'
import type { CurrencyTotals, RunResult } from './reconcile.ts'
import { sumTotals } from './report-files.ts'

export const exitCodes = { clean: 0, discrepancies: 1, error: 2 } as const

const n = (value: number | bigint): string => value.toLocaleString('en-US')

export function sumCounts (runs: readonly RunResult[]): ClassCounts {
  const counts = emptyCounts()
  for (const run of runs) for (const c of itemClasses) counts[c] += run.counts[c]
  return counts
}

function totalsLines (totals: readonly CurrencyTotals[], indent: string): string[] {
  return totals.map((t) => `${indent}${t.currency}  PSP ${n(t.pspRows)} rows, gross ${n(t.pspAmount)}, fees ${n(t.pspFee)}, net ${n(t.pspNet)}` +
    `  |  ours ${n(t.internalRows)} payments, gross ${n(t.internalAmount)}  (minor units)`)
}

function countsLines (counts: ClassCounts, indent: string): string[] {
  return itemClasses.filter((c) => counts[c] > 0 || c === 'matched')
    .map((c) => `${indent}${c.padEnd(20)} ${n(counts[c]).padStart(12)}${discrepancyClasses.has(c) ? '  (discrepancy)' : ''}`)
}

export function runLine (run: RunResult): string {
  const replaced = run.supersededRunId === null ? '' : `, replaces run ${run.supersededRunId}`
  const pending = run.pending > 0 ? `, ${n(run.pending)} pending settlement` : ''
  return `${run.psp} ${run.date}: run ${run.runId}${replaced}${run.trigger === 'follow_up' ? ' (follow-up)' : ''}: ` +
    `${n(run.pspRows)} PSP rows, ${n(run.internalRows)} ours, ${n(run.discrepancies)} discrepancies${pending} ` +
    `(${(run.durationMs / 1000).toFixed(1)} s)`
}

export interface SummaryInput {
  /** The current result of every date asked for (after follow-ups), in date order. */
  runs: RunResult[]
  /** Follow-up reruns of neighbour dates outside the range asked for. */
  followUps: RunResult[]
  month: string | undefined
  itemsPath: string
  itemsRows: number
  totalsPath: string
  peakRssMb: number
}

export function exitCodeOf (runs: readonly RunResult[]): number {
  return runs.some((r) => r.discrepancies > 0) ? exitCodes.discrepancies : exitCodes.clean
}

export function textSummary (s: SummaryInput): string {
  const counts = sumCounts(s.runs)
  const lines: string[] = []
  if (s.runs.length === 1) {
    const run = s.runs[0]!
    lines.push(`Reconciliation ${runLine(run)}`)
    lines.push(...countsLines(counts, '  '))
    lines.push(...totalsLines(run.totals, '  '))
  } else {
    lines.push(`Reconciliation ${s.month ?? ''} (${s.runs.length} runs)`)
    for (const run of s.runs) lines.push(`  ${runLine(run)}`)
    lines.push('  all days:')
    lines.push(...countsLines(counts, '    '))
    lines.push(...totalsLines(sumTotals(s.runs), '    '))
  }
  for (const run of s.followUps) lines.push(`  follow-up: ${runLine(run)}`)
  const pending = counts.pending_settlement
  if (pending > 0) lines.push(`  ${n(pending)} payments or refunds pending settlement: not discrepancies until the neighbour days are reconciled`)
  lines.push(`Items: ${s.itemsPath} (${n(s.itemsRows)} rows)`)
  lines.push(`Totals: ${s.totalsPath}`)
  const discrepancies = s.runs.reduce((x, r) => x + r.discrepancies, 0)
  lines.push(discrepancies > 0 ? `Result: ${n(discrepancies)} discrepancies (exit 1)` : 'Result: clean (exit 0)')
  return lines.join('\n') + '\n'
}

function runJson (run: RunResult): Record<string, unknown> {
  return {
    run_id: run.runId,
    psp: run.psp,
    report_date: run.date,
    trigger: run.trigger,
    superseded_run_id: run.supersededRunId,
    duration_ms: run.durationMs,
    psp_rows: run.pspRows,
    internal_rows: run.internalRows,
    counts: run.counts,
    discrepancies: run.discrepancies,
    pending: run.pending,
    neighbours_reconciled: run.neighboursReconciled,
    phases_ms: run.phasesMs,
    totals: run.totals.map(totalsJson),
  }
}

function totalsJson (t: CurrencyTotals): Record<string, unknown> {
  // Sums as strings: they may pass 2^53.
  return {
    currency: t.currency,
    psp_rows: t.pspRows,
    psp_amount: t.pspAmount.toString(),
    psp_fee: t.pspFee.toString(),
    psp_net: t.pspNet.toString(),
    internal_rows: t.internalRows,
    internal_amount: t.internalAmount.toString(),
  }
}

export function jsonSummary (s: SummaryInput): string {
  return JSON.stringify({
    runs: s.runs.map(runJson),
    follow_ups: s.followUps.map(runJson),
    month: s.month ?? null,
    counts: sumCounts(s.runs),
    totals: sumTotals(s.runs).map(totalsJson),
    discrepancies: s.runs.reduce((x, r) => x + r.discrepancies, 0),
    items_file: s.itemsPath,
    items_rows: s.itemsRows,
    totals_file: s.totalsPath,
    peak_rss_mb: s.peakRssMb,
    exit_code: exitCodeOf(s.runs),
  }) + '\n'
}
