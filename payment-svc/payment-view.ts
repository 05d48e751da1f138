// The public JSON shape of a payment. Amounts stay integers in minor units.

import type { Payment } from '../lib/payment-codec.ts'
import { currencyExponent } from './currencies.ts'

/** The ISO text of the last second formatted ("2026-11-23T17:36:29."); most answers fall in it. */
let cachedSecond = Number.NaN
let cachedSecondPrefix = ''

/** `new Date(ms).toISOString()`, without a Date object and full formatting for every answer. */
export function isoTime (ms: number): string {
  // Whole milliseconds in years 1970..9999 only; anything else takes the general path.
  if (!(Number.isInteger(ms) && ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString()
  const second = Math.floor(ms / 1000)
  if (second !== cachedSecond) {
    cachedSecondPrefix = new Date(second * 1000).toISOString().slice(0, 20)
    cachedSecond = second
  }
  const milli = ms - second * 1000
  return cachedSecondPrefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z'
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
  }
  if (payment.failureCode !== '') {
    view.failure_code = payment.failureCode
    view.failure_message = payment.failureMessage
  }
  if (payment.pspReference !== '') view.psp_reference = payment.pspReference
  return view
}

/** The internal view adds what processors need and merchants must not see of each other. */
export function internalPaymentView (payment: Payment): Record<string, unknown> {
  return { ...paymentView(payment), merchant_id: payment.merchantId, node_id: payment.nodeId }
}
