// What end-to-end tests need beyond the public API: the sandbox PSP's admin view, Postgres, and
// waiting for a payment to reach a terminal state.

import pg from 'pg'
import { call, createPayment, eventually, getInternal, newCheckoutId, testMerchantId, type ApiResponse } from './api.ts'
import { chargeIdempotencyKey, refundIdempotencyKey } from '../../processor/psp/types.ts'
import { loadStackInfo } from './stack.ts'
import { setPspConfig } from '../../bench/scenarios/e2e.ts'

const stack = loadStackInfo()
const terminal = new Set(['succeeded', 'failed', 'canceled'])

let pool: pg.Pool | undefined
export function db (): pg.Pool {
  // Read-only role: the tests check the record, they never write it.
  pool ??= new pg.Pool({ connectionString: stack.databaseUrls.readonly, max: 4 })
  return pool
}
export async function closeDb (): Promise<void> {
  await pool?.end()
  pool = undefined
}

export function pspAdmin (path: string, method: 'GET' | 'PUT' | 'POST' | 'DELETE' = 'GET', body?: unknown): Promise<ApiResponse> {
  return call(`${stack.psp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.psp.secretKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
}

/** Every charge the PSP ever made under the payment's idempotency key (the proof of "at most one"). */
export async function pspCharges (checkoutId: string, merchantId = testMerchantId): Promise<any[]> {
  const res = await pspAdmin(`/admin/charges?idempotency_key=${encodeURIComponent(chargeIdempotencyKey(merchantId, checkoutId))}`)
  if (res.status !== 200) throw new Error(`psp admin answered ${res.status}: ${res.text}`)
  return res.body.data
}

export async function createWith (paymentMethod: string, prefix = 'e2e', amount = 1999, currency = 'EUR'): Promise<string> {
  const id = newCheckoutId(prefix)
  const res = await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, { amount, currency, payment_method: paymentMethod })
  if (res.status !== 202) throw new Error(`create ${id} answered ${res.status}: ${res.text}`)
  return id
}

/** Every refund the PSP ever made under a refund's idempotency key (the proof of "at most one"). */
export async function pspRefunds (refundId: string): Promise<any[]> {
  const res = await pspAdmin(`/admin/refunds?idempotency_key=${encodeURIComponent(refundIdempotencyKey(refundId))}`)
  if (res.status !== 200) throw new Error(`psp admin answered ${res.status}: ${res.text}`)
  return res.body.data
}

/** The node's refund once it has left `pending`. */
export function refundSettles (checkoutId: string, refundId: string, deadlineMs: number, merchantId = testMerchantId): Promise<any> {
  return eventually(async () => {
    const res = await getInternal(stack.internalUrl, checkoutId, undefined, merchantId)
    const refund = res.status === 200 ? res.body.refunds?.find((r: any) => r.id === refundId) : undefined
    return refund !== undefined && refund.status !== 'pending' ? refund : undefined
  }, deadlineMs, `refund ${refundId} of ${checkoutId} on its node to settle`)
}

/** The node's view once the payment has reached one of `statuses` (default: terminal). */
export function nodeReaches (checkoutId: string, deadlineMs: number, statuses: ReadonlySet<string> = terminal, merchantId = testMerchantId): Promise<any> {
  return eventually(async () => {
    const res = await getInternal(stack.internalUrl, checkoutId, undefined, merchantId)
    return res.status === 200 && statuses.has(res.body.status) ? res.body : undefined
  }, deadlineMs, `${checkoutId} on its node to reach ${[...statuses].join('|')}`)
}

/** The Postgres row once it has caught up with the node's version. */
export function postgresReaches (checkoutId: string, version: number, deadlineMs: number, merchantId = testMerchantId): Promise<any> {
  return eventually(async () => {
    const { rows } = await db().query('SELECT * FROM payments WHERE merchant_id = $2 AND checkout_id = $1', [checkoutId, merchantId])
    return rows[0] !== undefined && Number(rows[0].version) >= version ? rows[0] : undefined
  }, deadlineMs, `${checkoutId} in Postgres at version ${version}`)
}

/**
 * A payment the processor has taken as far as it goes on its own: a `pm_card_requires_action`
 * card stops at `requires_action` (version 3) until something else moves it, so tests of
 * transitions and long-polls have a payment that stays put.
 */
export async function createSettledForAction (prefix: string): Promise<{ id: string, version: number }> {
  const id = await createWith('pm_card_requires_action', prefix)
  const payment = await nodeReaches(id, 30_000, new Set(['requires_action']))
  return { id, version: payment.version }
}

/**
 * The sandbox PSP's runtime config as the test file found it: `set` changes part of it (through
 * the control API), `restore` puts the named fields back as they were.
 */
export async function pspConfigControl (fields: readonly string[]): Promise<{
  original: Record<string, unknown>
  set: (patch: Record<string, unknown>) => Promise<void>
  restore: () => Promise<void>
}> {
  const original = (await pspAdmin('/admin/config')).body as Record<string, unknown>
  const set = (patch: Record<string, unknown>): Promise<void> => setPspConfig(loadStackInfo(), patch)
  return { original, set, restore: () => set(Object.fromEntries(fields.map((f) => [f, original[f]]))) }
}
