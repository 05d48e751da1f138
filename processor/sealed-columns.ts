// What the processor writes to Postgres sealed (issue #17 part 7): the columns that would hold a
// payment method token, a webhook body, or a PSP request or answer naming the token. Each value is
// `enc:<base64url>` (lib/field-crypto.ts), bound to its row's identity, so a value copied to
// another row does not open. Readers that need the clear value (ops tools, tests) use the open
// functions with the same key ring.

import type { FieldSealer } from '../lib/field-crypto.ts'

/** The PSP request and answer fields that carry the payment method token. */
const tokenFields = ['payment_method'] as const

export function paymentMethodColumnContext (merchantId: string, checkoutId: string): string {
  return `payments.payment_method/${merchantId}/${checkoutId}`
}

export function sealPaymentMethodColumn (sealer: FieldSealer, merchantId: string, checkoutId: string, paymentMethod: string): string {
  return sealer.sealText(paymentMethod, paymentMethodColumnContext(merchantId, checkoutId))
}

/**
 * Seals `payments.payment_method` once per payment, not once per event (a payment's created and
 * outcome events both carry it, ~4 µs a seal): the sealed text is kept by checkout id and reused
 * while merchant and method are the same. Two generations of at most entriesMax / 2 each.
 */
export class PaymentMethodColumnSealer {
  readonly #sealer: FieldSealer
  readonly #generationEntriesMax: number
  #young = new Map<string, { merchantId: string, paymentMethod: string, sealed: string }>()
  #old = new Map<string, { merchantId: string, paymentMethod: string, sealed: string }>()

  constructor (sealer: FieldSealer, entriesMax: number) {
    this.#sealer = sealer
    this.#generationEntriesMax = Math.max(1, Math.floor(entriesMax / 2))
  }

  seal (merchantId: string, checkoutId: string, paymentMethod: string): string {
    const hit = this.#young.get(checkoutId) ?? this.#old.get(checkoutId)
    if (hit !== undefined && hit.merchantId === merchantId && hit.paymentMethod === paymentMethod) return hit.sealed
    const sealed = sealPaymentMethodColumn(this.#sealer, merchantId, checkoutId, paymentMethod)
    if (this.#young.size >= this.#generationEntriesMax) {
      this.#old = this.#young
      this.#young = new Map()
    }
    this.#young.set(checkoutId, { merchantId, paymentMethod, sealed })
    return sealed
  }
}

export function openPaymentMethodColumn (sealer: FieldSealer, merchantId: string, checkoutId: string, stored: string): string {
  return sealer.openText(stored, paymentMethodColumnContext(merchantId, checkoutId))
}

export function webhookPayloadColumnContext (provider: string, pspEventId: string, checkoutId: string): string {
  return `webhooks.payload/${provider}/${pspEventId}/${checkoutId}`
}

/** `webhooks.payload` is jsonb: the sealed body goes in as `{"sealed": "enc:…"}`. */
export function sealWebhookPayloadColumn (sealer: FieldSealer, provider: string, pspEventId: string, checkoutId: string, payloadJson: string): string {
  return JSON.stringify({ sealed: sealer.sealText(payloadJson, webhookPayloadColumnContext(provider, pspEventId, checkoutId)) })
}

export function openWebhookPayloadColumn (sealer: FieldSealer, provider: string, pspEventId: string, checkoutId: string, stored: { sealed: string }): string {
  return sealer.openText(stored.sealed, webhookPayloadColumnContext(provider, pspEventId, checkoutId))
}

/** One attempt's token, in its request and in its answer alike. */
export function attemptTokenContext (checkoutId: string, attempt: number): string {
  return `psp_attempts/${checkoutId}/${attempt}/payment_method`
}

/**
 * A PSP attempt's request and answer with their token fields sealed (top level: the sandbox's
 * charge body and charge object); anything else is kept as it is. The same token in both is
 * sealed once and stored twice (one seal per attempt).
 */
export function sealAttemptTokens (sealer: FieldSealer, checkoutId: string, attempt: number, request: unknown, response: unknown): { request: unknown, response: unknown } {
  const sealedByToken = new Map<string, string>()
  const sealOne = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
    let out: Record<string, unknown> | undefined
    for (const field of tokenFields) {
      const token = (value as Record<string, unknown>)[field]
      if (typeof token !== 'string') continue
      out ??= { ...(value as Record<string, unknown>) }
      let sealed = sealedByToken.get(token)
      if (sealed === undefined) {
        sealed = sealer.sealText(token, attemptTokenContext(checkoutId, attempt))
        sealedByToken.set(token, sealed)
      }
      out[field] = sealed
    }
    return out ?? value
  }
  return { request: sealOne(request), response: sealOne(response) }
}
