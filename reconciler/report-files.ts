// The finance CSV files of a CLI run, written from Postgres with COPY ... TO STDOUT (streamed to a
// temp file, renamed into place when complete: a file at the final path is always whole).
//
// <out>                items: one row per reconciliation item of the runs (by default every
//                      item except plain matches; --include-matched adds those)
// <out stem>.totals.csv  per date and currency: PSP gross, fees, net; our gross; plus one
//                      `YYYY-MM` row per currency for a --month run

import { createWriteStream } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import { ReconcileError } from './errors.ts'
import type { CurrencyTotals, RunResult } from './reconcile.ts'

export const itemColumns = ['report_date', 'psp', 'run_id', 'class', 'note', 'psp_line', 'psp_reference', 'checkout_id',
  'psp_checkout_id', 'merchant_id', 'psp_amount', 'internal_amount', 'psp_currency', 'internal_currency', 'fee', 'net',
  'psp_status', 'internal_status', 'psp_charged_at', 'internal_succeeded_at', 'line_type', 'refund_id', 'psp_charge'] as const

export const totalsColumns = ['period', 'psp', 'run_id', 'currency', 'psp_rows', 'psp_amount', 'psp_fee', 'psp_net',
  'internal_rows', 'internal_amount'] as const

export function totalsPath (itemsPath: string): string {
  return itemsPath.replace(/(\.csv)?$/i, '.totals.csv')
}

async function atomically (path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  try {
    await mkdir(dirname(path), { recursive: true })
    await write(tmp)
    await rename(tmp, path)
  } catch (error) {
    await rm(tmp, { force: true })
    if (error instanceof ReconcileError) throw error
    throw new ReconcileError('output_failed', `${path}: ${(error as Error).message}`, { cause: error })
  }
}

/** Streams the items of `runs` into a CSV file; returns the rows written. */
export async function writeItemsCsv (pool: pg.Pool, runs: readonly RunResult[], path: string, includeMatched: boolean): Promise<number> {
  const ids = runs.map((r) => r.runId)
  for (const id of ids) if (!Number.isSafeInteger(id) || id < 1) throw new Error(`bad run id ${id}`) // inlined below: COPY takes no parameters
  let rows = 0
  await atomically(path, async (tmp) => {
    if (ids.length === 0) {
      await writeFile(tmp, itemColumns.join(',') + '\n')
      return
    }
    const client = await pool.connect().catch((error: unknown) => {
      throw new ReconcileError('db_unavailable', (error as Error).message, { cause: error })
    })
    try {
      const filter = includeMatched ? '' : "AND NOT (i.class = 'matched' AND i.note IS NULL)"
      const sql = `COPY (
        SELECT r.report_date, r.psp, i.run_id, i.class, i.note, i.psp_line, i.psp_reference, i.checkout_id, i.psp_checkout_id,
               i.merchant_id, i.psp_amount, i.internal_amount, i.psp_currency, i.internal_currency, i.fee, i.net,
               i.psp_status, i.internal_status,
               to_char(i.psp_charged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               to_char(i.internal_succeeded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               i.line_type, i.refund_id, i.psp_charge
        FROM reconciliation_items i JOIN reconciliation_runs r ON r.id = i.run_id
        WHERE i.run_id IN (${ids.join(', ')}) ${filter}
        ORDER BY r.report_date, r.psp, i.psp_line NULLS LAST, i.line_type, i.checkout_id, i.refund_id
      ) TO STDOUT WITH (FORMAT csv)`
      const stream = client.query(copyTo(sql))
      const file = createWriteStream(tmp)
      file.write(itemColumns.join(',') + '\n')
      await pipeline(stream, file)
      rows = stream.rowCount
    } catch (error) {
      client.release(true)
      throw error
    }
    client.release()
  })
  return rows
}

function sum (totals: readonly CurrencyTotals[]): Map<string, CurrencyTotals> {
  const byCurrency = new Map<string, CurrencyTotals>()
  for (const t of totals) {
    const s = byCurrency.get(t.currency) ?? { currency: t.currency, pspRows: 0, pspAmount: 0n, pspFee: 0n, pspNet: 0n, internalRows: 0, internalAmount: 0n }
    s.pspRows += t.pspRows
    s.pspAmount += t.pspAmount
    s.pspFee += t.pspFee
    s.pspNet += t.pspNet
    s.internalRows += t.internalRows
    s.internalAmount += t.internalAmount
    byCurrency.set(t.currency, s)
  }
  return byCurrency
}

/** Per-currency sums over runs (the month's totals). */
export function sumTotals (runs: readonly RunResult[]): CurrencyTotals[] {
  return [...sum(runs.flatMap((r) => r.totals)).values()].sort((a, b) => a.currency.localeCompare(b.currency))
}

function totalsLine (period: string, psp: string, runId: number | '', t: CurrencyTotals): string {
  return [period, psp, runId, t.currency, t.pspRows, t.pspAmount, t.pspFee, t.pspNet, t.internalRows, t.internalAmount].join(',')
}

export async function writeTotalsCsv (runs: readonly RunResult[], path: string, month: string | undefined): Promise<void> {
  const lines = [totalsColumns.join(',')]
  for (const run of runs) for (const t of run.totals) lines.push(totalsLine(run.date, run.psp, run.runId, t))
  if (month !== undefined) {
    for (const psp of [...new Set(runs.map((r) => r.psp))]) {
      for (const t of sumTotals(runs.filter((r) => r.psp === psp))) lines.push(totalsLine(month, psp, '', t))
    }
  }
  await atomically(path, (tmp) => writeFile(tmp, lines.join('\n') + '\n'))
}
