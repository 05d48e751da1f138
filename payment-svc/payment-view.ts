// The public JSON shape of a payment. Amounts stay integers in minor units.

import { capturedAmountOf, type Payment, type Refund } from '../lib/payment-codec.ts'
import { amountCapturable } from './capture.ts'
import { currencyExponent } from './currencies.ts'
import { amountRefunded } from './refunds.ts'

/**
 * The ISO text of recently formatted seconds ("2026-11-23T17:36:29."), direct-mapped by the second
 * (a slot per second of the last isoSecondSlots seconds). One slot was not enough: a busy node
 * answers for payments created at many different seconds (long-polls, webhooks, transitions),
 * so consecutive calls kept evicting each other; measured at 2.6 % of a node's busy time.
 */
const isoSecondSlots = 256
const cachedSeconds = new Float64Array(isoSecondSlots).fill(Number.NaN)
const cachedSecondPrefixes: string[] = new Array<string>(isoSecondSlots).fill('')

/** `new Date(ms).toISOString()`, without a Date object and full formatting for every answer. */
export function isoTime (ms: number): string {
  // Whole milliseconds in years 1970..9999 only; anything else takes the general path.
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString()
  const second = Math.floor(ms / 1000)
  const slot = second % isoSecondSlots
  if (cachedSeconds[slot] !== second) {
    cachedSecondPrefixes[slot] = new Date(second * 1000).toISOString().slice(0, 20)
    cachedSeconds[slot] = second
  }
  const milli = ms - second * 1000
  return cachedSecondPrefixes[slot]! + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z'
}

export function paymentView (payment: Payment): Record<string, unknown> {
  const createdAt = isoTime(payment.createdAtMs)
  const view: Record<string, unknown> = {
    checkout_id: payment.checkoutId,
    status: payment.status,
    amount: payment.amount,
    currency: payment.currency,
    currency_exponent: currencyExponent(payment.currency),
    payment_method: payment.paymentMethod,
    description: payment.description,
    customer_ref: payment.customerRef,
    metadata: payment.metadata,
    created_at: createdAt,
    updated_at: payment.updatedAtMs === payment.createdAtMs ? createdAt : isoTime(payment.updatedAtMs),
    version: payment.version,
    // Succeeded refunds only; pending ones are in `refunds` with their status.
    amount_refunded: amountRefunded(payment),
    refunds: payment.refunds.length === 0 ? noRefunds : payment.refunds.map((refund) => refundView(payment, refund)),
  }
  if (payment.failureCode !== '') {
    view.failure_code = payment.failureCode
    view.failure_message = payment.failureMessage
  }
  if (payment.pspReference !== '') view.psp_reference = payment.pspReference
  // Issue #16: the routing decision (the processor's claim records it before the first charge).
  if (payment.pspProvider !== undefined) view.psp_provider = payment.pspProvider
  if (payment.captureMethod === 'manual') {
    // Stripe's names: what the authorization still allows, what the merchant asked to capture and
    // what was captured (the bound of its refunds).
    view.capture_method = 'manual'
    view.amount_capturable = amountCapturable(payment)
    if ((payment.amountToCapture ?? 0) > 0) view.amount_to_capture = payment.amountToCapture
    view.amount_captured = capturedAmountOf(payment)
  } else {
    view.capture_method = 'automatic'
    view.amount_captured = payment.status === 'succeeded' ? payment.amount : 0
  }
  // Stripe's shape: the checkout page sends the customer there to approve or decline.
  if (payment.status === 'requires_action' && payment.nextActionUrl !== undefined && payment.nextActionUrl !== '') {
    view.next_action = { type: 'redirect_to_url', redirect_to_url: { url: payment.nextActionUrl } }
  }
  return view
}

const noRefunds: readonly unknown[] = Object.freeze([])

/** The public JSON shape of one refund. */
export function refundView (payment: Payment, refund: Refund): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: refund.id,
    object: 'refund',
    checkout_id: payment.checkoutId,
    amount: refund.amount,
    currency: payment.currency,
    status: refund.status,
    reason: refund.reason,
    created_at: isoTime(refund.createdAtMs),
    updated_at: isoTime(refund.updatedAtMs),
  }
  if (refund.pspReference !== '') view.psp_reference = refund.pspReference
  if (refund.failureCode !== '') {
    view.failure_code = refund.failureCode
    view.failure_message = refund.failureMessage
  }
  return view
}

/** The internal view adds what processors need and merchants must not see of each other. */
export function internalPaymentView (payment: Payment): Record<string, unknown> {
  return { ...paymentView(payment), merchant_id: payment.merchantId, node_id: payment.nodeId }
}
