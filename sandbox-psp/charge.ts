// The charge object (Stripe's shape) and its only transitions. A charge is created in its first
// status and may move once: pending -> succeeded | failed (the async completer), or
// requires_action -> canceled (POST /v1/charges/{id}/cancel) | succeeded | failed (the customer's
// page, customer-action.ts). Succeeded, failed and canceled are final.
//
// Settlement rule: a charge settles on the UTC date on which it reached `succeeded` (settled_on),
// and carries that instant as `succeeded_at`. For a synchronous success that is its creation; for an
// async one, the moment the PSP completed it. Only succeeded charges carry a fee (money.ts).

import { createHash } from 'node:crypto'
import { feeFor } from './money.ts'
import type { FinalFailure } from './rules.ts'

export type ChargeStatus = 'succeeded' | 'failed' | 'pending' | 'requires_action' | 'canceled'

export interface Charge {
  id: string
  object: 'charge'
  status: ChargeStatus
  amount: number
  currency: string
  payment_method: string
  /** Our checkout id. */
  reference: string
  merchant_id: string
  description?: string
  idempotency_key: string
  failure_code?: string
  failure_message?: string
  /** Unix seconds. */
  created: number
  fee: number
  net: number
  /** YYYY-MM-DD (UTC), only once succeeded. */
  settled_on?: string
  /** Unix seconds, only once succeeded. */
  succeeded_at?: number
  /** Unix seconds, only once canceled. */
  canceled_at?: number
  /** Only while requires_action: where the customer approves or declines (Stripe's shape). */
  next_action?: { type: 'redirect_to_url', redirect_to_url: { url: string } }
}

/** The validated parameters of POST /v1/charges. */
export interface ChargeParams {
  amount: number
  currency: string
  payment_method: string
  reference: string
  merchant_id: string
  description?: string
}

export function unixSeconds (ms: number): number {
  return Math.floor(ms / 1000)
}

/** The UTC calendar date of an instant, YYYY-MM-DD. */
export function utcDate (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/**
 * Identifies the parameters a key was first used with. Replays compare fingerprints, so the
 * stored idempotency record need not keep the request.
 */
export function paramsFingerprint (params: ChargeParams): string {
  const canonical = JSON.stringify([params.amount, params.currency, params.payment_method,
    params.reference, params.merchant_id, params.description ?? null])
  return createHash('sha256').update(canonical).digest('base64url')
}

export function newCharge (id: string, idempotencyKey: string, params: ChargeParams, status: ChargeStatus, nowMs: number): Charge {
  const charge: Charge = {
    id,
    object: 'charge',
    status,
    amount: params.amount,
    currency: params.currency,
    payment_method: params.payment_method,
    reference: params.reference,
    merchant_id: params.merchant_id,
    idempotency_key: idempotencyKey,
    created: unixSeconds(nowMs),
    fee: 0,
    net: 0,
  }
  if (params.description !== undefined) charge.description = params.description
  return status === 'succeeded' ? succeed(charge, nowMs) : charge
}

export function succeed (charge: Charge, nowMs: number): Charge {
  const fee = feeFor(charge.amount)
  return {
    ...withoutNextAction(charge),
    status: 'succeeded',
    fee,
    net: charge.amount - fee,
    settled_on: utcDate(nowMs),
    succeeded_at: unixSeconds(nowMs),
  }
}

/** A charge awaiting the customer, canceled by the merchant: nothing is or will be taken. */
export function cancel (charge: Charge, nowMs: number): Charge {
  return { ...withoutNextAction(charge), status: 'canceled', canceled_at: unixSeconds(nowMs) }
}

export function fail (charge: Charge, failure: FinalFailure): Charge {
  return { ...withoutNextAction(charge), status: 'failed', failure_code: failure.code, failure_message: failure.message, fee: 0, net: 0 }
}

/** The customer declined on the challenge page. */
export const customerDeclined: FinalFailure = { code: 'authentication_declined', message: 'The customer declined the payment' }

function withoutNextAction (charge: Charge): Charge {
  if (charge.next_action === undefined) return charge
  const { next_action: _, ...rest } = charge
  return rest
}
