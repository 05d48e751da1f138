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

export function attemptTokenContext (checkoutId: string, attempt: number, column: 'request' | 'response'): string {
  return `psp_attempts.${column}/${checkoutId}/${attempt}`
}

/**
 * A PSP request or answer with its token fields sealed (top level: the sandbox's charge body and
 * charge object). Anything else is kept as it is.
 */
export function sealAttemptTokens (sealer: FieldSealer, value: unknown, checkoutId: string, attempt: number, column: 'request' | 'response'): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  let out: Record<string, unknown> | undefined
  for (const field of tokenFields) {
    const token = (value as Record<string, unknown>)[field]
    if (typeof token !== 'string') continue
    out ??= { ...(value as Record<string, unknown>) }
    out[field] = sealer.sealText(token, attemptTokenContext(checkoutId, attempt, column))
  }
  return out ?? value
}
