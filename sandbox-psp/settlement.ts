// The daily settlement report, GET /v1/settlements/<YYYY-MM-DD>.csv.
//
// One row per charge that reached `succeeded` on that UTC date (settled_on, see charge.ts), in
// psp_reference order, read from the s/<date>/ index with an iterator, `settlementReadBatchRows`
// at a time, and written with backpressure: memory stays flat whatever the day's size (it serves
// a million rows), and a slow reader slows the iterator instead of filling a buffer.
// An index entry holds just what a row needs (SettlementEntry), written in the same batch in which
// the charge became succeeded; a succeeded charge never changes, so the entry never goes stale.
//
//   settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at
//   2025-03-01,ch_...,co-123,m1,1999,EUR,53,1946,succeeded,2025-03-01T10:11:12Z
//
// amount, fee and net are integer minor units (money.ts); charged_at is the instant the charge
// succeeded (UTC, ISO 8601, seconds). Cells are quoted per RFC 4180 when needed. Lines end in \n.
// Discrepancy switches (discrepancies.ts) are applied on the way out; the stored charges never change.

import type { Writable } from 'node:stream'
import type { Charge } from './charge.ts'
import { DiscrepancyPlan, type Discrepancies } from './discrepancies.ts'
import { writeWithBackpressure } from './http-io.ts'
import type { PspLimits } from './limits.ts'
import { feeFor } from './money.ts'
import { randomInt, seedFromString, seededRandom } from './random.ts'
import { keys, rangeEnd, type PspStore } from './store.ts'

export const settlementColumns = ['settlement_date', 'psp_reference', 'checkout_id', 'merchant_id', 'amount',
  'currency', 'fee', 'net', 'status', 'charged_at'] as const
export const settlementHeader = settlementColumns.join(',')

const datePattern = /^\d{4}-\d{2}-\d{2}$/
const idAlphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const dayS = 86_400
const fabricatedAmountMin = 100
const fabricatedAmountMax = 100_000
/** Key + value of one s/ entry with ordinary ids (~130 bytes), rounded up. */
const settlementEntryBytesTypical = 160

/** A real calendar date in YYYY-MM-DD form. */
export function isReportDate (date: string): boolean {
  if (!datePattern.test(date)) return false
  const ms = Date.parse(`${date}T00:00:00Z`)
  return Number.isFinite(ms) && new Date(ms).toISOString().startsWith(date)
}

/** The s/<date>/<charge id> value: [id, reference, merchant_id, amount, currency, succeeded_at_s]. */
export type SettlementEntry = [id: string, reference: string, merchantId: string, amount: number, currency: string, succeededAtS: number]

export function encodeSettlementEntry (charge: Charge): string {
  // A captured authorization settles what was captured, never what was authorized (issue #14).
  const entry: SettlementEntry = [charge.id, charge.reference, charge.merchant_id, charge.amount_captured ?? charge.amount, charge.currency,
    charge.succeeded_at ?? charge.created]
  return JSON.stringify(entry)
}

export function loadDiscrepancies (store: PspStore, date: string): Discrepancies {
  const raw = store.get(keys.discrepancies(date))
  return raw === undefined ? {} : JSON.parse(raw) as Discrepancies
}

function cell (value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value
}

let isoDay = NaN
let isoDayPrefix = ''
const pad2 = (n: number): string => (n < 10 ? '0' : '') + n

/** YYYY-MM-DDTHH:MM:SSZ. Rows of a report share a day: its prefix is formatted once, not per row. */
function isoSeconds (unixS: number): string {
  const day = Math.floor(unixS / dayS)
  if (day !== isoDay) {
    isoDay = day
    isoDayPrefix = new Date(day * dayS * 1000).toISOString().slice(0, 11)
  }
  const s = unixS - day * dayS
  return `${isoDayPrefix}${pad2(Math.floor(s / 3600))}:${pad2(Math.floor(s / 60) % 60)}:${pad2(s % 60)}Z`
}

interface Row {
  psp_reference: string
  checkout_id: string
  merchant_id: string
  amount: number
  currency: string
  status: string
  charged_at_s: number
}

function formatRow (date: string, row: Row): string {
  const fee = feeFor(Math.max(0, row.amount))
  return [date, cell(row.psp_reference), cell(row.checkout_id), cell(row.merchant_id), String(row.amount),
    row.currency, String(fee), String(row.amount - fee), cell(row.status), isoSeconds(row.charged_at_s)].join(',')
}

function malformedRow (date: string, row: Row): string {
  return [date, cell(row.psp_reference), cell(row.checkout_id), cell(row.merchant_id), 'not-a-number', row.currency].join(',')
}

/** Charges that never happened, the same for every download of the date. */
function * fabricatedRows (date: string, count: number, merchantId: string): Generator<Row> {
  const random = seededRandom(seedFromString(`fabricated/${date}`))
  const dayStartS = Date.parse(`${date}T00:00:00Z`) / 1000
  for (let i = 0; i < count; i++) {
    let id = 'ch_'
    for (let c = 0; c < 24; c++) id += idAlphabet[Math.floor(random() * idAlphabet.length)]
    yield {
      psp_reference: id,
      checkout_id: `fabricated-${date}-${i}`,
      merchant_id: merchantId,
      amount: randomInt(random, fabricatedAmountMin, fabricatedAmountMax),
      currency: 'EUR',
      status: 'succeeded',
      charged_at_s: dayStartS + randomInt(random, 0, dayS - 1),
    }
  }
}

export interface ReportResult {
  /** Data rows written in full. */
  rows: number
  truncated: boolean
}

/**
 * Streams the report for `date` into `sink` and ends it. Rejects (leaving `sink` to the caller) if
 * the sink closes early. `onRows` hears about rows as they are written, for metrics.
 */
export async function writeSettlementReport (store: PspStore, date: string, sink: Writable, limits: PspLimits,
  onRows: (rows: number) => void = () => {}): Promise<ReportResult> {
  const plan = new DiscrepancyPlan(loadDiscrepancies(store, date))
  let written = 0
  let stopped = false
  let chunk = settlementHeader + '\n'
  let merchantForFabrications = 'm_fabricated'

  const emit = (row: Row): void => {
    if (stopped) return
    const line = formatRow(date, row)
    if (plan.truncateAfterRows !== undefined && written === plan.truncateAfterRows) {
      chunk += line.slice(0, Math.max(1, Math.floor(line.length / 2)))
      stopped = true
      return
    }
    written++
    chunk += (plan.malformedRow === written ? malformedRow(date, row) : line) + '\n'
  }
  const flush = async (): Promise<void> => {
    if (chunk === '') return
    const rowsBefore = written
    await writeWithBackpressure(sink, chunk)
    chunk = ''
    onRows(written - rowsBefore)
  }

  const iterator = store.db.iterator({
    gt: keys.settlementPrefix(date),
    lt: keys.settlementPrefix(date) + rangeEnd,
    // classic-level cuts a nextv() at 16 KiB by default (~150 entries); let a step hold the batch.
    highWaterMarkBytes: limits.settlementReadBatchRows * settlementEntryBytesTypical,
  })
  let reportedRows = 0
  try {
    while (!stopped) {
      const entries = await iterator.nextv(limits.settlementReadBatchRows)
      if (entries.length === 0) break
      for (const [, value] of entries) {
        const [id, reference, merchantId, amount, currency, succeededAtS] = JSON.parse(value) as SettlementEntry
        if (reportedRows === 0) merchantForFabrications = merchantId
        reportedRows++
        if (plan.missing(id, reference)) continue
        const row: Row = {
          psp_reference: id,
          checkout_id: reference,
          merchant_id: merchantId,
          amount: amount + plan.amountDelta(id, reference),
          currency: plan.currency(id, reference) ?? currency,
          status: plan.status(id, reference) ?? 'succeeded',
          charged_at_s: succeededAtS,
        }
        emit(row)
        if (plan.duplicated(id, reference)) emit(row)
      }
      await flush()
    }
  } finally {
    await iterator.close()
  }
  let fabricated = 0
  for (const row of fabricatedRows(date, plan.extraRows, merchantForFabrications)) {
    if (stopped) break
    emit(row)
    if (++fabricated % limits.settlementReadBatchRows === 0) await flush()
  }
  await flush()
  sink.end()
  return { rows: written, truncated: stopped }
}
