// The refund object (Stripe's shape) and its only transitions. A refund gives back part or all of
// a succeeded charge; pending and succeeded refunds of a charge never exceed its amount. Created
// in its first status, it may move once: pending -> succeeded | failed (the async completer).
// Succeeded and failed are final; a failed refund gives its amount back to what may be refunded.

import { createHash } from 'node:crypto'
import type { Charge } from './charge.ts'
import { unixSeconds } from './charge.ts'
import type { FinalFailure } from './rules.ts'

export type RefundStatus = 'succeeded' | 'failed' | 'pending'

export interface Refund {
  id: string
  object: 'refund'
  status: RefundStatus
  /** Integer minor units of the charge's currency. */
  amount: number
  currency: string
  /** The charge refunded. */
  charge: string
  /** The caller's own reference for this refund (Ringpay: its refund id). */
  reference: string
  /** The charge's reference (Ringpay: the checkout id): webhooks are routed by it. */
  payment_reference: string
  merchant_id: string
  idempotency_key: string
  failure_code?: string
  failure_message?: string
  /** Unix seconds. */
  created: number
  /** Unix seconds, only once succeeded. */
  succeeded_at?: number
}

/** The validated parameters of POST /v1/refunds. */
export interface RefundParams {
  charge: string
  amount: number
  reference: string
}

export function refundFingerprint (params: RefundParams): string {
  return createHash('sha256').update(JSON.stringify([params.charge, params.amount, params.reference])).digest('base64url')
}

export function newRefund (id: string, idempotencyKey: string, params: RefundParams, charge: Charge, status: RefundStatus, nowMs: number): Refund {
  const refund: Refund = {
    id,
    object: 'refund',
    status: 'pending',
    amount: params.amount,
    currency: charge.currency,
    charge: charge.id,
    reference: params.reference,
    payment_reference: charge.reference,
    merchant_id: charge.merchant_id,
    idempotency_key: idempotencyKey,
    created: unixSeconds(nowMs),
  }
  return status === 'pending' ? refund : settleRefund(refund, status === 'succeeded' ? undefined : refundDeclined, nowMs)
}

export const refundDeclined: FinalFailure = { code: 'expired_or_canceled_card', message: 'The card was canceled; the refund could not be made.' }

/** A pending refund's end: succeeded (no failure) or failed. */
export function settleRefund (refund: Refund, failure: FinalFailure | undefined, nowMs: number): Refund {
  if (failure === undefined) return { ...refund, status: 'succeeded', succeeded_at: unixSeconds(nowMs) }
  return { ...refund, status: 'failed', failure_code: failure.code, failure_message: failure.message }
}
