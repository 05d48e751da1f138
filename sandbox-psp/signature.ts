// Webhook signatures, Stripe's scheme with our header name. The payment node imports the verifier.
//
//   Ringpay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(webhookSecret, "<t>.<raw body>")>
//
// - The HMAC covers the timestamp and the exact bytes of the body as sent, so the receiver must
//   verify the raw body before parsing it (re-serialised JSON would not match).
// - The timestamp is the time of the delivery attempt (each retry is signed afresh); receivers
//   refuse a timestamp further than `toleranceS` from their clock, which bounds replays of a
//   captured request. Event ids (evt_...) let them drop duplicates within that window.
// - A header may carry several v1 entries (e.g. while a secret is rotated); one match is enough.
//   Unknown schemes (v0=...) are ignored. Comparison is constant-time.

import { createHmac, timingSafeEqual } from 'node:crypto'

export const signatureHeaderName = 'Ringpay-Signature'
/** The tolerance receivers should use unless they have a reason not to (Stripe's default). */
export const signatureToleranceSDefault = 300

const signatureBytes = 32
const hexSignature = /^[0-9a-f]{64}$/
const timestampDigits = /^[0-9]{1,12}$/

function hmac (secret: string, timestampS: number, body: string | Uint8Array): Buffer {
  const mac = createHmac('sha256', secret)
  mac.update(`${timestampS}.`)
  mac.update(body)
  return mac.digest()
}

/** The value of the Ringpay-Signature header for `body` sent at `timestampS`. */
export function signWebhook (secret: string, timestampS: number, body: string | Uint8Array): string {
  if (!Number.isSafeInteger(timestampS) || timestampS < 0) throw new RangeError('timestampS must be a non-negative integer')
  return `t=${timestampS},v1=${hmac(secret, timestampS, body).toString('hex')}`
}

export type SignatureCheck =
  | { ok: true, timestampS: number }
  | { ok: false, reason: 'missing_header' | 'malformed_header' | 'signature_mismatch' | 'timestamp_outside_tolerance' }

/**
 * Checks a Ringpay-Signature header against the raw body. `nowS` is the receiver's clock in unix
 * seconds; `toleranceS` the largest accepted difference (both directions: clocks drift).
 */
export function verifyWebhookSignature (secret: string, header: string | undefined, body: string | Uint8Array,
  nowS: number, toleranceS: number = signatureToleranceSDefault): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'missing_header' }
  let timestampS: number | undefined
  const candidates: Buffer[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq === -1) return { ok: false, reason: 'malformed_header' }
    const key = part.slice(0, eq).trim()
    const value = part.slice(eq + 1).trim()
    if (key === 't') {
      if (timestampS !== undefined || !timestampDigits.test(value)) return { ok: false, reason: 'malformed_header' }
      timestampS = Number(value)
    } else if (key === 'v1') {
      // A malformed v1 is skipped rather than fatal: another v1 may still match.
      if (hexSignature.test(value)) candidates.push(Buffer.from(value, 'hex'))
    }
  }
  if (timestampS === undefined || candidates.length === 0) return { ok: false, reason: 'malformed_header' }
  const expected = hmac(secret, timestampS, body)
  let matched = false
  for (const candidate of candidates) {
    // Every candidate is compared (no early exit), each in constant time.
    if (candidate.length === signatureBytes && timingSafeEqual(candidate, expected)) matched = true
  }
  if (!matched) return { ok: false, reason: 'signature_mismatch' }
  if (Math.abs(nowS - timestampS) > toleranceS) return { ok: false, reason: 'timestamp_outside_tolerance' }
  return { ok: true, timestampS }
}
