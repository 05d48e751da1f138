// A payment's identity (issue #17 part 5): the merchant's id and the checkout id it chose. Checkout
// ids are per merchant: the same id used by two merchants is two payments. nginx still routes by
// the checkout id alone, so both live on one node, which keys everything per payment on the pair.

/** The pair, as the snake_case views (node, change-event projections, Postgres rows) carry it. */
export interface PaymentId {
  merchant_id: string
  checkout_id: string
}

/** Separates the two parts of a payment key: neither id may contain it ([A-Za-z0-9_-] only). */
export const paymentKeySeparator = '/'

/**
 * One string for the pair (`<merchant>/<checkout>`), for maps and sets keyed per payment.
 * Unambiguous: merchant and checkout ids are [A-Za-z0-9_-]{1,64}.
 */
export function paymentKey (merchantId: string, checkoutId: string): string {
  return merchantId + paymentKeySeparator + checkoutId
}

const merchantIdPattern = /^[A-Za-z0-9_-]{1,64}$/

/** A merchant id as API keys name them (payment-svc/api-keys.ts): 1..64 of [A-Za-z0-9_-]. */
export function isValidMerchantId (id: string): boolean {
  return merchantIdPattern.test(id)
}
