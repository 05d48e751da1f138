// Reconciler integration tests against the shared stack's Postgres and sandbox PSP. They never
// disturb other tests: report dates are far in the future (a year of its own per test file and
// run, dateSequence), charges are generated with a unique reference prefix, our
// payments rows are inserted with unique checkout ids, and nothing is ever deleted.

import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { request } from 'undici'
import { addDays } from '../../reconciler/dates.ts'
import { createPool } from '../../reconciler/db.ts'
import { sandboxReportSource } from '../../reconciler/psp-source.ts'
import { reconcileDay, reconcileWithFollowUps, type RunResult } from '../../reconciler/reconcile.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const pspRequestTimeoutMs = 30_000
export const merchantId = 'm_recon_test'

let pool: pg.Pool | undefined
let adminPool: pg.Pool | undefined
let source: ReturnType<typeof sandboxReportSource> | undefined

/** As the reconciler's own role (ringpay_reconciler), the way the daemon and the CLI run. */
export function reconPool (): pg.Pool {
  pool ??= createPool(stack.databaseUrls.reconciler)
  return pool
}

/** As the admin role: our side of a day is written by the tests, which no service role may do here. */
function paymentsPool (): pg.Pool {
  adminPool ??= createPool(stack.databaseUrl)
  return adminPool
}

function reportSource (): ReturnType<typeof sandboxReportSource> {
  source ??= sandboxReportSource(stack.psp.url, stack.psp.secretKey)
  return source
}

export async function closeRecon (): Promise<void> {
  await Promise.allSettled([pool?.end(), adminPool?.end(), source?.close()])
  pool = undefined
  adminPool = undefined
  source = undefined
}

/** The test files that reconcile days of their own: each gets a year no other one uses in the same run. */
export const reconTestFiles = ['classes', 'refunds', 'runs', 'refund-matching', 'capture', 'shared-checkout-ids'] as const
export type ReconTestFile = typeof reconTestFiles[number]
/** Their years: 2046.., blocks of one year per file. 2045 is the bench's test day (bench/test/scenarios.test.ts). */
const reconYearFirst = 2046
const reconYearBlocks = 8

/**
 * Dates of one test file: `firstMonth`..; each call to next() is 4 days after the previous, so D-1..D+2 of one case never touch another's.
 * The year is random per run and file, but two files never share one: it is `file`'s slot in a
 * random block (the years of two files differ modulo the number of files). Random years alone let
 * two files meet about once in sixty runs, and a file whose days ran into another's month (or a
 * whole-month run) then counted the other's charges.
 */
export function dateSequence (firstMonth: number, file: ReconTestFile): { year: number, next: () => string } {
  const year = reconYearFirst + reconTestFiles.length * (randomBytes(1)[0]! % reconYearBlocks) + reconTestFiles.indexOf(file)
  let date = `${year}-${String(firstMonth).padStart(2, '0')}-02`
  return {
    year,
    next: () => {
      const d = date
      date = addDays(date, 4)
      return d
    },
  }
}

export function uniquePrefix (name: string): string {
  return `rt-${name}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}-`
}

export interface GeneratedCharge {
  reference: string
  psp_reference: string
  amount: number
  currency: string
  fee: number
  net: number
  created: number
  /** With `refundEvery`: the refund the PSP made of this charge on the same date. */
  refund?: { reference: string, psp_reference: string, amount: number, created: number }
}

export interface RefundOptions {
  /** Refund every k-th charge (index 0, k, 2k, …). */
  refundEvery: number
  /** Refund the whole amount (else half). */
  refundWhole?: boolean
}

async function psp (path: string, method: 'GET' | 'PUT' | 'POST' | 'DELETE', body?: unknown): Promise<{ status: number, text: string }> {
  const res = await request(`${stack.psp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.psp.secretKey}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    headersTimeout: pspRequestTimeoutMs,
    bodyTimeout: pspRequestTimeoutMs,
  })
  return { status: res.statusCode, text: await res.body.text() }
}

/** `count` succeeded charges settling on `date` at the sandbox PSP, for `merchant` (its checkout ids `<prefix><index>`). */
export async function generateCharges (date: string, count: number, prefix: string, refunds?: RefundOptions, merchant = merchantId): Promise<GeneratedCharge[]> {
  const res = await psp('/admin/generate', 'POST', {
    date, count, merchant_id: merchant, reference_prefix: prefix, amount_min: 500, amount_max: 50_000,
    ...(refunds === undefined ? {} : { refund_every: refunds.refundEvery, refund_whole: refunds.refundWhole === true }),
  })
  if (res.status !== 200) throw new Error(`generate answered ${res.status}: ${res.text}`)
  const lines = res.text.trim().split('\n').map((l) => JSON.parse(l) as GeneratedCharge & { object?: string })
  if (lines.at(-1)?.object !== 'generation_summary') throw new Error('generation cut short')
  return lines.slice(0, -1)
}

export async function setDiscrepancies (date: string, switches: Record<string, unknown>): Promise<void> {
  const res = await psp(`/admin/settlements/${date}/discrepancies`, 'PUT', switches)
  if (res.status !== 200) throw new Error(`discrepancies answered ${res.status}: ${res.text}`)
}

export interface OurPayment {
  /** Default: merchantId (the tests' merchant). Checkout ids are per merchant (issue #17 part 5). */
  merchantId?: string
  checkoutId: string
  pspReference: string | null
  amount: number
  currency: string
  status: string
  /** When it reached its status (the success instant for succeeded). */
  updatedAt: Date
  /** Succeeded refunds (minor units). */
  amountRefunded?: number
}

export interface OurRefund {
  refundId: string
  checkoutId: string
  pspReference: string | null
  amount: number
  currency: string
  status: string
  /** When it reached its status (the success instant for succeeded). */
  updatedAt: Date
}

/** Our side of the generated refunds: same amount and ids, succeeded when the PSP says. */
export function ourRefundsFor (charges: readonly GeneratedCharge[]): OurRefund[] {
  return charges.filter((c) => c.refund !== undefined).map((c) => ({
    refundId: c.refund!.reference, checkoutId: c.reference, pspReference: c.refund!.psp_reference, amount: c.refund!.amount,
    currency: c.currency, status: 'succeeded', updatedAt: new Date(c.refund!.created * 1000),
  }))
}

/** Our side of generated charges: same amount, currency and reference, succeeded when the PSP says. */
export function oursFor (charges: readonly GeneratedCharge[]): OurPayment[] {
  return charges.map((c) => ({
    checkoutId: c.reference, pspReference: c.psp_reference, amount: c.amount, currency: c.currency, status: 'succeeded',
    updatedAt: new Date(c.created * 1000), amountRefunded: c.refund?.amount ?? 0,
  }))
}

export async function insertPayments (payments: readonly OurPayment[]): Promise<void> {
  if (payments.length === 0) return
  await paymentsPool().query(`
    INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, psp_reference, created_at, updated_at,
      amount_refunded)
    SELECT id, merchant, 'recon-test', amount, currency, status, 3, 'pm_card_visa', ref, at - interval '1 second', at, refunded
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::bigint[])
      AS t(id, merchant, amount, currency, status, ref, at, refunded)`,
  [payments.map((p) => p.checkoutId), payments.map((p) => p.merchantId ?? merchantId), payments.map((p) => p.amount), payments.map((p) => p.currency),
    payments.map((p) => p.status), payments.map((p) => p.pspReference), payments.map((p) => p.updatedAt), payments.map((p) => p.amountRefunded ?? 0)])
}

export async function insertRefunds (refunds: readonly OurRefund[]): Promise<void> {
  if (refunds.length === 0) return
  await paymentsPool().query(`
    INSERT INTO refunds (refund_id, checkout_id, merchant_id, amount, currency, status, psp_reference, payment_version, created_at, updated_at)
    SELECT id, checkout, $2, amount, currency, status, ref, 4, at - interval '1 second', at
    FROM unnest($1::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::timestamptz[]) AS t(id, checkout, amount, currency, status, ref, at)`,
  [refunds.map((r) => r.refundId), merchantId, refunds.map((r) => r.checkoutId), refunds.map((r) => r.amount), refunds.map((r) => r.currency),
    refunds.map((r) => r.status), refunds.map((r) => r.pspReference), refunds.map((r) => r.updatedAt)])
}

export function reconcile (date: string): Promise<RunResult[]> {
  return reconcileWithFollowUps({ pool: reconPool(), source: reportSource().source }, { psp: 'sandbox', date, trigger: 'test' })
}

export function reconcileOnce (date: string): Promise<RunResult> {
  return reconcileDay({ pool: reconPool(), source: reportSource().source }, { psp: 'sandbox', date, trigger: 'test' })
}

export interface Item {
  class: string
  line_type: string
  refund_id: string | null
  psp_charge: string | null
  note: string | null
  psp_line: string | null
  psp_reference: string | null
  checkout_id: string | null
  psp_amount: string | null
  internal_amount: string | null
  psp_status: string | null
  internal_status: string | null
  day_offset: number | null
}

export async function itemsOf (runId: number): Promise<Item[]> {
  return (await reconPool().query<Item>('SELECT * FROM reconciliation_items WHERE run_id = $1 ORDER BY psp_line NULLS LAST, checkout_id', [runId])).rows
}

export async function currentRun (date: string): Promise<{ id: string, counts: Record<string, number>, discrepancies: string, pending: string } | undefined> {
  return (await reconPool().query("SELECT * FROM reconciliation_runs WHERE psp = 'sandbox' AND report_date = $1 AND is_current", [date])).rows[0]
}

/** Class of each checkout id in a run's charge items (a checkout with several items: joined by '+', in line order). */
export async function classesByCheckout (runId: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const item of await itemsOf(runId)) {
    if (item.line_type !== 'charge') continue
    const key = item.checkout_id ?? `line-${item.psp_line}`
    out[key] = out[key] === undefined ? item.class : `${out[key]}+${item.class}`
  }
  return out
}

/** Class of each refund in a run's items (by our refund id, else the line's refund reference; several items: joined by '+'). */
export async function classesByRefund (runId: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const item of await itemsOf(runId)) {
    if (item.line_type !== 'refund') continue
    const key = item.refund_id ?? `line-${item.psp_line}`
    out[key] = out[key] === undefined ? item.class : `${out[key]}+${item.class}`
  }
  return out
}

export { stack }
