// What the e2e bench's own targets (the naive monolith, the async floor) read from a request the
// same way: the merchant of a key (the stack's keys file, SHA-256 digests), a create's checkout id
// and body (Ringpay's headers and body, checked only as far as a naive server would), and a PSP
// webhook (its path, its signature, the charge in it).

import { hash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { verifyWebhookSignature } from '../../lib/webhook-signature.ts'
import { bodyBytesMax } from './target-http.ts'

const webhookToleranceS = 300

/** The merchant of each key digest in the keys file at `path`. */
export function merchantsByKeyDigest (path: string): Map<string, string> {
  const keys = JSON.parse(readFileSync(path, 'utf8')) as { keys: Array<{ merchant_id: string, key_sha256: string }> }
  return new Map(keys.keys.map((k) => [k.key_sha256, k.merchant_id]))
}

export function merchantOf (merchants: ReadonlyMap<string, string>, authorization: string | undefined): string | undefined {
  return authorization?.startsWith('Bearer ') === true ? merchants.get(hash('sha256', authorization.slice(7), 'hex')) : undefined
}

export type CreateRead =
  | { ok: true, checkoutId: string, merchantId: string, body: Record<string, unknown> }
  | { ok: false, status: number, code: string }

/** `POST /payments`: the merchant, the checkout id and a body with a positive integer amount, a currency and a payment method. */
export function readCreate (merchants: ReadonlyMap<string, string>, req: IncomingMessage, text: string, bytes: number): CreateRead {
  const merchantId = merchantOf(merchants, req.headers.authorization)
  if (merchantId === undefined) return { ok: false, status: 401, code: 'unauthorized' }
  let body: Record<string, unknown>
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    return { ok: false, status: 400, code: 'invalid_json' }
  }
  const checkoutId = req.headers['x-payment-checkout-id']
  if (typeof checkoutId !== 'string' || bytes > bodyBytesMax || !Number.isSafeInteger(body.amount) || (body.amount as number) <= 0 ||
    typeof body.currency !== 'string' || typeof body.payment_method !== 'string') return { ok: false, status: 400, code: 'validation_failed' }
  return { ok: true, checkoutId, merchantId, body }
}

export type WebhookRead =
  | { kind: 'none' }
  | { kind: 'refused' }
  | { kind: 'charge', checkoutId: string, charge: { id?: string, status?: string } | undefined }

/** A PSP webhook (`POST /webhooks/psp/sandbox/<checkout id>`): not one, one whose signature fails, or its charge. */
export function readWebhook (secret: string, req: IncomingMessage, text: string): WebhookRead {
  const path = /^\/webhooks\/psp\/sandbox\/([A-Za-z0-9_-]{1,64})$/.exec(req.url ?? '')
  if (req.method !== 'POST' || path === null) return { kind: 'none' }
  const signature = req.headers['ringpay-signature']
  if (!verifyWebhookSignature(secret, typeof signature === 'string' ? signature : undefined, text, Math.floor(Date.now() / 1000), webhookToleranceS).ok) return { kind: 'refused' }
  return { kind: 'charge', checkoutId: path[1]!, charge: (JSON.parse(text) as { data?: { object?: { id?: string, status?: string } } }).data?.object }
}
