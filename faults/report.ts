// The per-fault table the suite prints (and the README quotes for the long profile).

import type { FaultRow } from './run-fault.ts'

const columns: Array<[string, (r: FaultRow) => string]> = [
  ['fault', (r) => r.fault],
  ['sent', (r) => String(r.sent)],
  ['acked', (r) => String(r.acked)],
  ['in flight at fault', (r) => String(r.inFlightAtFault)],
  ['injected', (r) => String(r.injected)],
  ['lost', (r) => String(r.lost)],
  ['double charges', (r) => String(r.doubleCharges)],
  ['mismatches', (r) => String(r.mismatches)],
  ['backwards', (r) => String(r.backwards)],
  ['other', (r) => String(r.otherFailures)],
  ['recover s', (r) => (r.recoverMs / 1000).toFixed(1)],
  ['result', (r) => (r.passed ? 'PASS' : 'FAIL')],
]

/** A Markdown table (readable as plain text too). */
export function faultTable (rows: readonly FaultRow[]): string {
  const header = `| ${columns.map(([name]) => name).join(' | ')} |`
  const rule = `|${columns.map(([name], i) => (i === 0 ? '---' : '---:').padEnd(Math.min(name.length, 4), '-')).join('|')}|`
  const body = rows.map((r) => `| ${columns.map(([, cell]) => cell(r)).join(' | ')} |`)
  return [header, rule, ...body].join('\n')
}

export function answersLine (row: FaultRow): string {
  return `${row.fault}: ${Object.entries(row.answers).map(([k, n]) => `${k} ×${n}`).join(', ')}`
}
