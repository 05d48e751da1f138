// PSP webhook signatures: header `Ringpay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where
// the HMAC (key = the webhook secret) covers `<t>.<raw body>`. Signing the timestamp with the body
// lets the receiver refuse replays older than its tolerance. Several v1 values may be present
// (secret rotation); any match is enough.

import { createHmac, timingSafeEqual } from 'node:crypto'

export const signatureHeader = 'ringpay-signature'

export function signWebhook (secret: string, timestampS: number, body: string): string {
  const digest = createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex')
  return `t=${timestampS},v1=${digest}`
}

/**
 * One header signed with several secrets (`t=…,v1=<first>,v1=<second>`): while a rolled secret's
 * grace period runs, the new and the old one both sign, so a receiver holding either verifies.
 */
export function signWebhookWithSecrets (secrets: readonly string[], timestampS: number, body: string): string {
  if (secrets.length === 0) throw new RangeError('at least one secret signs')
  const signed = `${timestampS}.${body}`
  return `t=${timestampS},${secrets.map((secret) => `v1=${createHmac('sha256', secret).update(signed).digest('hex')}`).join(',')}`
}

export type SignatureCheck = { ok: true } | { ok: false, reason: 'missing' | 'malformed' | 'stale' | 'mismatch' }

export function verifyWebhookSignature (secret: string, header: string | undefined, body: string, nowS: number,
  toleranceS: number): SignatureCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'missing' }
  let timestampS: number | undefined
  const candidates: string[] = []
  for (const part of header.split(',')) {
    const eq = part.indexOf('=')
    if (eq === -1) return { ok: false, reason: 'malformed' }
    const name = part.slice(0, eq).trim()
    const value = part.slice(eq + 1).trim()
    if (name === 't' && /^\d{1,12}$/.test(value)) timestampS = Number(value)
    else if (name === 'v1' && /^[0-9a-f]{64}$/.test(value)) candidates.push(value)
  }
  if (timestampS === undefined || candidates.length === 0) return { ok: false, reason: 'malformed' }
  if (Math.abs(nowS - timestampS) > toleranceS) return { ok: false, reason: 'stale' }
  const expected = createHmac('sha256', secret).update(`${timestampS}.${body}`).digest()
  // Constant time per candidate: the comparison leaks nothing about how much of a guess was right.
  const match = candidates.some((candidate) => timingSafeEqual(Buffer.from(candidate, 'hex'), expected))
  return match ? { ok: true } : { ok: false, reason: 'mismatch' }
}
