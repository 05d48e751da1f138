// What a merchant may ask of the reporting API, checked before anything reaches Postgres, and the
// keyset queries that answer it. Pages go newest first by (created_at, id): a cursor is the last
// row's position, so a page never repeats or skips a row that already existed when the first page
// was read, however many rows arrive meanwhile (an OFFSET would shift under them).
// Payments and refunds are listed by the same code: a Listing names the table, its id column, its
// statuses, its columns and its statement names; everything else is shared.

import type pg from 'pg'
import { paymentStatuses, type PaymentStatus } from '../lib/payment-codec.ts'
import type { FieldError } from '../payment-svc/errors.ts'
import { reportingLimits as limits } from './limits.ts'

export interface ListQuery {
  createdGteMs: number | undefined
  createdLtMs: number | undefined
  /** One of the listing's statuses. */
  status: string | undefined
  limit: number
  startingAfter: string | undefined
}

/** A CSV column: its header and the SQL expression of its cell. */
type CsvColumn = readonly [header: string, expression: string]

/** One list of the API: what differs between GET /payments and GET /refunds. */
export interface Listing<Row> {
  /** The table; every statement also filters on its merchant_id. */
  table: 'payments' | 'refunds'
  /** The id column: the cursor (starting_after) and the order's tie-break. */
  idColumn: 'checkout_id' | 'refund_id'
  idPattern: RegExp
  /** "a checkout id": what starting_after must be, in messages. */
  idWhat: string
  statuses: readonly string[]
  /** The columns a page reads (Row's fields). */
  rowColumns: string
  /** Prepared statement names: the cursor lookup, and the list's prefix (one per shape of query). */
  cursorStatement: string
  listStatementPrefix: string
  csvColumns: readonly CsvColumn[]
  /** Marks Row's type; never read. */
  readonly row?: Row
}

const checkoutIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const refundIdPattern = /^re_[A-Za-z0-9_-]{1,64}$/
/** The projected refunds' statuses (db/migrations/0003_refunds.sql). */
export const refundStatuses = ['pending', 'succeeded', 'failed'] as const
// RFC 3339 with an explicit zone: a bare date-time would be read in the server's zone.
const instantPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$/
const dayPattern = /^\d{4}-\d{2}-\d{2}$/
const known = new Set(['created[gte]', 'created[lt]', 'status', 'limit', 'starting_after'])
const dayMs = 86_400_000

function instant (errors: FieldError[], field: string, raw: string | null): number | undefined {
  if (raw === null) return undefined
  // A bare day means its start, UTC.
  const text = dayPattern.test(raw) ? `${raw}T00:00:00Z` : raw
  const ms = instantPattern.test(text) ? Date.parse(text) : Number.NaN
  if (!Number.isFinite(ms)) {
    errors.push({ field, code: 'format', message: `${field} must be an RFC 3339 time with a zone (2026-12-07T00:00:00Z) or a day (2026-12-07)` })
    return undefined
  }
  return ms
}

/** Parses and checks the list's query; FieldErrors for everything wrong, never a partial query. */
export function parseListQuery (listing: Listing<unknown>, query: URLSearchParams, options: { rangeRequired: boolean }): { query: ListQuery } | { errors: FieldError[] } {
  const errors: FieldError[] = []
  for (const name of new Set(query.keys())) {
    if (!known.has(name)) errors.push({ field: name, code: 'unknown', message: `unknown parameter ${name}` })
    else if (query.getAll(name).length > 1) errors.push({ field: name, code: 'repeated', message: `${name} may be given once` })
  }
  const createdGteMs = instant(errors, 'created[gte]', query.get('created[gte]'))
  const createdLtMs = instant(errors, 'created[lt]', query.get('created[lt]'))
  if (createdGteMs !== undefined && createdLtMs !== undefined && createdLtMs <= createdGteMs) {
    errors.push({ field: 'created[lt]', code: 'range', message: 'created[lt] must be after created[gte]' })
  }
  if (options.rangeRequired) {
    if (createdGteMs === undefined || createdLtMs === undefined) {
      errors.push({ field: 'created', code: 'required', message: 'an export needs created[gte] and created[lt]' })
    } else if (createdLtMs - createdGteMs > limits.exportRangeDaysMax * dayMs) {
      errors.push({ field: 'created', code: 'range', message: `an export covers at most ${limits.exportRangeDaysMax} days` })
    }
  }
  const statusText = query.get('status')
  let status: string | undefined
  if (statusText !== null) {
    if (listing.statuses.includes(statusText)) status = statusText
    else errors.push({ field: 'status', code: 'enum', message: `status must be one of ${listing.statuses.join(', ')}` })
  }
  const limitText = query.get('limit')
  let limit: number = limits.pageSizeDefault
  if (limitText !== null) {
    limit = /^\d{1,4}$/.test(limitText) ? Number(limitText) : Number.NaN
    if (!(limit >= 1 && limit <= limits.pageSizeMax)) {
      errors.push({ field: 'limit', code: 'range', message: `limit must be an integer in 1..${limits.pageSizeMax}` })
    }
  }
  const startingAfter = query.get('starting_after') ?? undefined
  if (startingAfter !== undefined && !listing.idPattern.test(startingAfter)) {
    errors.push({ field: 'starting_after', code: 'format', message: `starting_after must be ${listing.idWhat}` })
  }
  if (errors.length > 0) return { errors }
  return { query: { createdGteMs, createdLtMs, status, limit, startingAfter } }
}

export interface PaymentRow {
  checkout_id: string
  status: PaymentStatus
  amount: string
  amount_refunded: string
  currency: string
  version: string
  psp_reference: string | null
  failure_code: string | null
  failure_message: string | null
  flagged_reason: string | null
  created_at: Date
  updated_at: Date
}

export interface RefundRow {
  refund_id: string
  checkout_id: string
  status: (typeof refundStatuses)[number]
  amount: string
  currency: string
  reason: string
  psp_reference: string | null
  failure_code: string | null
  failure_message: string | null
  created_at: Date
  updated_at: Date
}

/** Where a cursor stands: the created_at of the merchant's own row, or undefined if it has none by that id. */
async function cursorPosition (pool: pg.Pool, listing: Listing<unknown>, merchantId: string, id: string): Promise<Date | undefined> {
  const result = await pool.query<{ created_at: Date }>({
    name: listing.cursorStatement,
    text: `SELECT created_at FROM ${listing.table} WHERE merchant_id = $1 AND ${listing.idColumn} = $2`,
    values: [merchantId, id],
  })
  return result.rows[0]?.created_at
}

export class UnknownCursor extends Error {}

/**
 * One page, newest first, and whether more follow. Only the conditions asked for are in the
 * statement, so each can use the (merchant_id, created_at, id) index; each shape of query is its
 * own named statement (at most 16 per listing), prepared once per connection.
 */
export async function listPage<Row extends pg.QueryResultRow> (pool: pg.Pool, listing: Listing<Row>, merchantId: string, q: ListQuery):
Promise<{ rows: Row[], hasMore: boolean }> {
  const conditions = ['merchant_id = $1']
  const values: unknown[] = [merchantId]
  let shape = 0
  const add = (bit: number, condition: (next: number) => string, ...more: unknown[]): void => {
    shape |= bit
    conditions.push(condition(values.length + 1))
    values.push(...more)
  }
  if (q.createdGteMs !== undefined) add(1, (n) => `created_at >= $${n}`, new Date(q.createdGteMs))
  if (q.createdLtMs !== undefined) add(2, (n) => `created_at < $${n}`, new Date(q.createdLtMs))
  if (q.status !== undefined) add(4, (n) => `status = $${n}`, q.status)
  if (q.startingAfter !== undefined) {
    const at = await cursorPosition(pool, listing, merchantId, q.startingAfter)
    if (at === undefined) throw new UnknownCursor(q.startingAfter)
    add(8, (n) => `(created_at, ${listing.idColumn}) < ($${n}, $${n + 1})`, at, q.startingAfter)
  }
  values.push(q.limit + 1)
  const result = await pool.query<Row>({
    name: `${listing.listStatementPrefix}${shape}`,
    text: `SELECT ${listing.rowColumns} FROM ${listing.table} WHERE ${conditions.join(' AND ')}
      ORDER BY created_at DESC, ${listing.idColumn} DESC LIMIT $${values.length}`,
    values,
  })
  const hasMore = result.rows.length > q.limit
  return { rows: hasMore ? result.rows.slice(0, q.limit) : result.rows, hasMore }
}

// Text a PSP or a merchant wrote could start like a spreadsheet formula: finance opens these
// files in one, so such a cell gets a leading apostrophe (OWASP's advice on CSV injection).
function defused (column: string): string {
  return `CASE WHEN ${column} ~ '^[-=+@\\t\\r]' THEN '''' || ${column} ELSE ${column} END`
}

const utcMillis = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

export const paymentListing: Listing<PaymentRow> = {
  table: 'payments',
  idColumn: 'checkout_id',
  idPattern: checkoutIdPattern,
  idWhat: 'a checkout id',
  statuses: paymentStatuses,
  rowColumns: 'checkout_id, status, amount, amount_refunded, currency, version, psp_reference, failure_code, failure_message, flagged_reason, created_at, updated_at',
  cursorStatement: 'ringpay_reporting_cursor_v1',
  listStatementPrefix: 'ringpay_reporting_list_v1_',
  csvColumns: [
    ['checkout_id', 'checkout_id'],
    ['created_at', utcMillis('created_at')],
    ['updated_at', utcMillis('updated_at')],
    ['status', 'status'],
    ['amount', 'amount'],
    ['amount_refunded', 'amount_refunded'],
    ['currency', 'currency'],
    ['version', 'version'],
    ['psp_reference', defused('psp_reference')],
    ['failure_code', defused('failure_code')],
    ['failure_message', defused('failure_message')],
    ['flagged_reason', defused('flagged_reason')],
  ],
}

export const refundListing: Listing<RefundRow> = {
  table: 'refunds',
  idColumn: 'refund_id',
  idPattern: refundIdPattern,
  idWhat: 'a refund id',
  statuses: refundStatuses,
  rowColumns: 'refund_id, checkout_id, status, amount, currency, reason, psp_reference, failure_code, failure_message, created_at, updated_at',
  cursorStatement: 'ringpay_reporting_refunds_cursor_v1',
  listStatementPrefix: 'ringpay_reporting_refunds_list_v1_',
  csvColumns: [
    ['refund_id', 'refund_id'],
    ['checkout_id', 'checkout_id'],
    ['created_at', utcMillis('created_at')],
    ['updated_at', utcMillis('updated_at')],
    ['status', 'status'],
    ['amount', 'amount'],
    ['currency', 'currency'],
    ['reason', defused('reason')],
    ['psp_reference', defused('psp_reference')],
    ['failure_code', defused('failure_code')],
    ['failure_message', defused('failure_message')],
  ],
}

export function csvHeader (listing: Listing<unknown>): string {
  return listing.csvColumns.map(([name]) => name).join(',') + '\n'
}

/**
 * The export as one COPY statement: Postgres writes the CSV (quoting included) and streams it, so
 * the service holds one chunk at a time whatever the range. COPY takes no bind parameters: the
 * values go in as literals escaped by the driver, and every one was validated before (a merchant
 * id from the keys file, instants parsed to numbers, a status from the enum).
 */
export function exportCopySql (listing: Listing<unknown>, merchantId: string, q: ListQuery, literal: (value: string) => string): string {
  const conditions = [
    `merchant_id = ${literal(merchantId)}`,
    `created_at >= ${literal(new Date(q.createdGteMs!).toISOString())}::timestamptz`,
    `created_at < ${literal(new Date(q.createdLtMs!).toISOString())}::timestamptz`,
  ]
  if (q.status !== undefined) conditions.push(`status = ${literal(q.status)}`)
  return `COPY (SELECT ${listing.csvColumns.map(([, expr]) => expr).join(', ')} FROM ${listing.table}
    WHERE ${conditions.join(' AND ')}
    ORDER BY created_at DESC, ${listing.idColumn} DESC) TO STDOUT WITH (FORMAT csv)`
}
