// The daily settlement report, GET /v1/settlements/<YYYY-MM-DD>.csv.
//
// One row per charge that reached `succeeded` on that UTC date (settled_on, see charge.ts), and one
// per refund that reached `succeeded` on it, in psp_reference order (so charges `ch_…` first, then
// refunds `re_…`), read from the s/<date>/ index with an iterator, `settlementReadBatchRows` at a
// time, and written with backpressure: memory stays flat whatever the day's size (it serves a
// million rows), and a slow reader slows the iterator instead of filling a buffer.
// An index entry holds just what a row needs (SettlementEntry), written in the same batch in which
// the charge or refund became succeeded; neither changes after that, so the entry never goes stale.
//
//   settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference
//   2025-03-01,ch_...,co-123,m1,1999,EUR,53,1946,succeeded,2025-03-01T10:11:12Z,charge,,
//   2025-03-01,re_...,co-123,m1,-500,EUR,0,-500,succeeded,2025-03-01T11:00:00Z,refund,ch_...,re_ours
//
// amount, fee and net are integer minor units (money.ts); charged_at is the instant the charge or
// refund succeeded (UTC, ISO 8601, seconds). `type` tells the lines apart. A refund line is money
// going back: a negative amount, no fee (the charge's fee is kept, as most PSPs do), net = amount;
// so the net column sums to what the PSP pays out for the day. Its checkout_id is the refunded
// charge's reference, `charge` the refunded charge and `refund_reference` the caller's own
// reference of the refund (Ringpay: its refund id); both are empty on charge lines.
// Cells are quoted per RFC 4180 when needed. Lines end in \n.
// Discrepancy switches (discrepancies.ts) are applied on the way out; the stored charges never change.

import assert from 'node:assert/strict'
import type { Writable } from 'node:stream'
import { utcDate, type Charge } from './charge.ts'
import { DiscrepancyPlan, type Discrepancies } from './discrepancies.ts'
import { writeWithBackpressure } from './http-io.ts'
import type { PspLimits } from './limits.ts'
import { feeFor } from './money.ts'
import { randomInt, seedFromString, seededRandom } from './random.ts'
import type { Refund } from './refund.ts'
import { keys, rangeEnd, type PspStore } from './store.ts'

export const settlementColumns = ['settlement_date', 'psp_reference', 'checkout_id', 'merchant_id', 'amount',
  'currency', 'fee', 'net', 'status', 'charged_at', 'type', 'charge', 'refund_reference'] as const
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
/**
 * The s/<date>/<refund id> value: a charge entry's fields (reference = the refunded charge's
 * reference, amount = the refund's, positive) plus the refunded charge and the refund's own reference.
 */
export type RefundSettlementEntry = [...SettlementEntry, charge: string, refundReference: string]

export function encodeSettlementEntry (charge: Charge): string {
  // A captured authorization settles what was captured, never what was authorized (issue #14).
  const entry: SettlementEntry = [charge.id, charge.reference, charge.merchant_id, charge.amount_captured ?? charge.amount, charge.currency,
    charge.succeeded_at ?? charge.created]
  return JSON.stringify(entry)
}

export function encodeRefundSettlementEntry (refund: Refund): string {
  assert.ok(refund.status === 'succeeded' && refund.succeeded_at !== undefined, `refund ${refund.id} is not succeeded`)
  const entry: RefundSettlementEntry = [refund.id, refund.payment_reference, refund.merchant_id, refund.amount, refund.currency,
    refund.succeeded_at, refund.charge, refund.reference]
  return JSON.stringify(entry)
}

/** The index key of a succeeded refund: it settles on the UTC date it succeeded, like a charge. */
export function refundSettlementKey (refund: Refund): string {
  assert.ok(refund.succeeded_at !== undefined, `refund ${refund.id} has not succeeded`)
  return keys.settlement(utcDate(refund.succeeded_at * 1000), refund.id)
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
  type: 'charge' | 'refund'
  psp_reference: string
  checkout_id: string
  merchant_id: string
  /** Minor units as the line shows them: a refund's is negative. */
  amount: number
  currency: string
  status: string
  charged_at_s: number
  /** Refund lines: the refunded charge and the refund's own reference ('' on charge lines). */
  charge: string
  refund_reference: string
}

function formatRow (date: string, row: Row): string {
  const fee = row.type === 'refund' ? 0 : feeFor(Math.max(0, row.amount))
  return [date, cell(row.psp_reference), cell(row.checkout_id), cell(row.merchant_id), String(row.amount),
    row.currency, String(fee), String(row.amount - fee), cell(row.status), isoSeconds(row.charged_at_s), row.type,
    cell(row.charge), cell(row.refund_reference)].join(',')
}

function malformedRow (date: string, row: Row): string {
  return [date, cell(row.psp_reference), cell(row.checkout_id), cell(row.merchant_id), 'not-a-number', row.currency].join(',')
}

function fabricatedId (prefix: string, random: () => number): string {
  let id = prefix
  for (let c = 0; c < 24; c++) id += idAlphabet[Math.floor(random() * idAlphabet.length)]
  return id
}

/** Charges that never happened, the same for every download of the date. */
function * fabricatedRows (date: string, count: number, merchantId: string): Generator<Row> {
  const random = seededRandom(seedFromString(`fabricated/${date}`))
  const dayStartS = Date.parse(`${date}T00:00:00Z`) / 1000
  for (let i = 0; i < count; i++) {
    yield {
      type: 'charge',
      psp_reference: fabricatedId('ch_', random),
      checkout_id: `fabricated-${date}-${i}`,
      merchant_id: merchantId,
      amount: randomInt(random, fabricatedAmountMin, fabricatedAmountMax),
      currency: 'EUR',
      status: 'succeeded',
      charged_at_s: dayStartS + randomInt(random, 0, dayS - 1),
      charge: '',
      refund_reference: '',
    }
  }
}

/** Refunds that never happened (of charges that never happened), the same for every download of the date. */
function * fabricatedRefundRows (date: string, count: number, merchantId: string): Generator<Row> {
  const random = seededRandom(seedFromString(`fabricated-refunds/${date}`))
  const dayStartS = Date.parse(`${date}T00:00:00Z`) / 1000
  for (let i = 0; i < count; i++) {
    yield {
      type: 'refund',
      psp_reference: fabricatedId('re_', random),
      checkout_id: `fabricated-${date}-refunded-${i}`,
      merchant_id: merchantId,
      amount: -randomInt(random, fabricatedAmountMin, fabricatedAmountMax),
      currency: 'EUR',
      status: 'succeeded',
      charged_at_s: dayStartS + randomInt(random, 0, dayS - 1),
      charge: fabricatedId('ch_', random),
      refund_reference: `fabricated-${date}-refund-${i}`,
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
        const entry = JSON.parse(value) as SettlementEntry | RefundSettlementEntry
        const [id, reference, merchantId, amount, currency, succeededAtS] = entry
        if (reportedRows === 0) merchantForFabrications = merchantId
        reportedRows++
        // A charge line is switched by its id or checkout id; a refund line by its id or its own
        // reference, never by its charge's checkout id (that switches the charge's line).
        const isRefund = entry.length === 8
        const ref = isRefund ? entry[7] : reference
        if (plan.missing(id, ref)) continue
        // A refund's delta changes the amount given back: its line shows -(amount + delta).
        const shown = amount + plan.amountDelta(id, ref)
        const row: Row = {
          type: isRefund ? 'refund' : 'charge',
          psp_reference: id,
          checkout_id: reference,
          merchant_id: merchantId,
          amount: isRefund ? -shown : shown,
          currency: plan.currency(id, ref) ?? currency,
          status: plan.status(id, ref) ?? 'succeeded',
          charged_at_s: succeededAtS,
          charge: isRefund ? entry[6] : '',
          refund_reference: isRefund ? entry[7] : '',
        }
        emit(row)
        if (plan.duplicated(id, ref)) emit(row)
      }
      await flush()
    }
  } finally {
    await iterator.close()
  }
  let fabricated = 0
  const fabrications = [fabricatedRows(date, plan.extraRows, merchantForFabrications),
    fabricatedRefundRows(date, plan.extraRefundRows, merchantForFabrications)]
  for (const rows of fabrications) {
    for (const row of rows) {
      if (stopped) break
      emit(row)
      if (++fabricated % limits.settlementReadBatchRows === 0) await flush()
    }
  }
  await flush()
  sink.end()
  return { rows: written, truncated: stopped }
}
