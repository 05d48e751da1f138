// The public JSON shape of a payment. Amounts stay integers in minor units.

import type { Payment } from '../lib/payment-codec.ts'
import { currencyExponent } from './currencies.ts'

export function paymentView (payment: Payment): Record<string, unknown> {
  const createdAt = new Date(payment.createdAtMs).toISOString()
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
    updated_at: payment.updatedAtMs === payment.createdAtMs ? createdAt : new Date(payment.updatedAtMs).toISOString(),
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
