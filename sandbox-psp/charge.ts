// The charge object (Stripe's shape) and its only transitions. A charge is created in its first
// status and may move once: pending -> succeeded | failed (the async completer), or
// requires_action -> canceled (POST /v1/charges/{id}/cancel) | succeeded | failed (the customer's
// page, customer-action.ts). Succeeded, failed and canceled are final.
//
// Manual capture (issue #14, Stripe's `capture: false`): a charge made to authorize only is
// `requires_capture` (no fee, not settled) until POST /v1/charges/{id}/capture takes all or part
// of it (succeeded, `amount_captured`, the rest released; settles that day for the captured
// amount), or it is voided: POST /v1/charges/{id}/cancel, or its window (`capture_before`) passes
// (canceled, `failure_code: authorization_expired`). An async or requires_action charge made to
// authorize only becomes requires_capture where it would have succeeded.
//
// Settlement rule: a charge settles on the UTC date on which it reached `succeeded` (settled_on),
// and carries that instant as `succeeded_at`. For a synchronous success that is its creation; for an
// async one, the moment the PSP completed it. Only succeeded charges carry a fee (money.ts).

import { createHash } from 'node:crypto'
import { feeFor } from './money.ts'
import type { FinalFailure } from './rules.ts'

export type ChargeStatus = 'succeeded' | 'failed' | 'pending' | 'requires_action' | 'canceled' | 'requires_capture'

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
  /** Only on a charge made with `capture: false` (the usual charge carries none of these). */
  capture_method?: 'manual'
  /** Unix seconds: an authorization not captured by then is voided (requires_capture only). */
  capture_before?: number
  /** What the capture took (≤ amount), once captured. */
  amount_captured?: number
  /** The Idempotency-Key of the capture, once captured: a repeat with it is answered the same. */
  capture_idempotency_key?: string
}

/** The validated parameters of POST /v1/charges. */
export interface ChargeParams {
  amount: number
  currency: string
  payment_method: string
  reference: string
  merchant_id: string
  description?: string
  /** false: authorize only (manual capture). Absent: the usual charge. */
  capture?: false
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
  const fields: unknown[] = [params.amount, params.currency, params.payment_method,
    params.reference, params.merchant_id, params.description ?? null]
  // Only when authorizing: the usual charge's fingerprint is unchanged.
  if (params.capture === false) fields.push('authorize')
  const canonical = JSON.stringify(fields)
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
  if (params.capture === false) charge.capture_method = 'manual'
  return status === 'succeeded' ? succeed(charge, nowMs) : charge
}

/**
 * Where a charge's rule says `succeeded`: a manual one is authorized (capturable until
 * `windowMs` from now), the usual one succeeds.
 */
export function succeedOrAuthorize (charge: Charge, nowMs: number, windowMs: number): Charge {
  return charge.capture_method === 'manual' ? authorize(charge, nowMs, windowMs) : succeed(charge, nowMs)
}

/** Authorized, not captured: no fee, not settled, capturable until the window ends. */
export function authorize (charge: Charge, nowMs: number, windowMs: number): Charge {
  return { ...withoutNextAction(charge), status: 'requires_capture', capture_before: unixSeconds(nowMs + windowMs), fee: 0, net: 0 }
}

/** The capture of (part of) an authorization: succeeded for `amount`, settling today; the rest is released. */
export function capture (charge: Charge, amount: number, idempotencyKey: string | undefined, nowMs: number): Charge {
  const fee = feeFor(amount)
  const { capture_before: _before, ...rest } = charge
  const captured: Charge = {
    ...rest,
    status: 'succeeded',
    amount_captured: amount,
    fee,
    net: amount - fee,
    settled_on: utcDate(nowMs),
    succeeded_at: unixSeconds(nowMs),
  }
  if (idempotencyKey !== undefined) captured.capture_idempotency_key = idempotencyKey
  return captured
}

/** An authorization not captured within its window: voided, nothing taken. */
export const authorizationExpired: FinalFailure = { code: 'authorization_expired', message: 'The authorization was not captured in time and was voided' }

/** What the charge took: its captured amount when it was captured, else its amount. */
export function amountTaken (charge: Charge): number {
  return charge.amount_captured ?? charge.amount
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

/**
 * A charge awaiting the customer, canceled by the merchant, or an authorization voided (by the
 * merchant, or by its window's end: `failure`): nothing is or will be taken.
 */
export function cancel (charge: Charge, nowMs: number, failure?: FinalFailure): Charge {
  const { capture_before: _before, ...rest } = withoutNextAction(charge)
  const canceled: Charge = { ...rest, status: 'canceled', canceled_at: unixSeconds(nowMs) }
  if (failure !== undefined) {
    canceled.failure_code = failure.code
    canceled.failure_message = failure.message
  }
  return canceled
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
