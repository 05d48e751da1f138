// Refunds of a payment (issue #14), as pure functions over the payment record. Refunds live inside
// the payment (proto `Payment.refunds`), so every refund write is a payment write: serialised per
// checkout id with every other write, version-bumped, fsynced with its change event. That is what
// makes "pending plus succeeded refunds never exceed the amount" hold under concurrent requests:
// each refund is judged against the durable payment, one at a time.
//
// A payment's status never changes for a refund (a succeeded payment stays `succeeded`, with
// `amount_refunded`); each refund has its own forward-only status: pending -> succeeded | failed.

import { randomBytes } from 'node:crypto'
import { capturedAmountOf, type Payment, type Refund, type RefundStatus } from '../lib/payment-codec.ts'

/**
 * Pending and succeeded refunds hold money back; a failed one gives it back. The bound is what was
 * captured: the whole amount of an automatic payment, `amount_captured` of a manual one.
 */
export function refundableAmount (payment: Payment): number {
  let committed = 0
  for (const refund of payment.refunds) if (refund.status !== 'failed') committed += refund.amount
  return capturedAmountOf(payment) - committed
}

/** What the PSP has given back: succeeded refunds only. */
export function amountRefunded (payment: Payment): number {
  let refunded = 0
  for (const refund of payment.refunds) if (refund.status === 'succeeded') refunded += refund.amount
  return refunded
}

/**
 * The idempotency key of the one refund that gives back a canceled payment's charge the PSP took
 * anyway (PaymentService.refundCanceledCharge). Merchants refund only succeeded payments, so it
 * never meets a merchant's key on the same payment.
 */
export const canceledChargeRefundKey = 'ringpay:canceled-charge'

export function findRefund (payment: Payment, refundId: string): Refund | undefined {
  return payment.refunds.find((refund) => refund.id === refundId)
}

export function findRefundByKey (payment: Payment, idempotencyKey: string): Refund | undefined {
  return payment.refunds.find((refund) => refund.idempotencyKey === idempotencyKey)
}

/**
 * `re_` + 22 base64url characters (128 random bits). Random, not derived from the checkout id, so
 * refund ids tell nothing about payments; the PSP idempotency key is derived from it.
 */
export function newRefundId (): string {
  return `re_${randomBytes(16).toString('base64url')}`
}

const refundTransitions: Readonly<Record<RefundStatus, readonly RefundStatus[]>> = {
  pending: ['succeeded', 'failed'],
  succeeded: [],
  failed: [],
}

export function canTransitionRefund (from: RefundStatus, to: RefundStatus): boolean {
  return refundTransitions[from].includes(to)
}

/** The payment with one refund replaced by its next state, at the payment's next version. */
export function withRefundUpdated (payment: Payment, refundId: string, to: RefundStatus, nowMs: number,
  details: { pspReference: string, failureCode: string, failureMessage: string }): { payment: Payment, refund: Refund } {
  let updated: Refund | undefined
  const refunds = payment.refunds.map((refund) => {
    if (refund.id !== refundId) return refund
    updated = {
      ...refund,
      status: to,
      updatedAtMs: nowMs,
      pspReference: details.pspReference || refund.pspReference,
      failureCode: details.failureCode || refund.failureCode,
      failureMessage: details.failureMessage || refund.failureMessage,
    }
    return updated
  })
  if (updated === undefined) throw new Error(`refund ${refundId} is not in payment ${payment.checkoutId}`)
  return { payment: { ...payment, refunds, version: payment.version + 1, updatedAtMs: nowMs }, refund: updated }
}
