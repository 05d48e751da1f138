// HTTP helpers for tests that drive the public and internal APIs through the stack's nginx.

import { randomBytes } from 'node:crypto'
import { Agent, request, type Dispatcher } from 'undici'
import { internalTokenHeader } from '../../lib/internal-credentials.ts'
import { loadStackInfo } from './stack.ts'

export interface ApiResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
  text: string
}

const requestTimeoutMs = 40_000

// A node's public API is a Unix socket (StackNodeInfo.publicSocket). Tests name it as a base URL
// `http+unix://<percent-encoded socket path>`, so the helpers that append paths work unchanged.
const unixScheme = 'http+unix://'
const unixAgents = new Map<string, Dispatcher>()

/** The base URL of a node's public API on its Unix socket, for call() and the helpers on it. */
export function unixSocketBaseUrl (socketPath: string): string {
  return `${unixScheme}${encodeURIComponent(socketPath)}`
}

function target (url: string): { url: string, dispatcher?: Dispatcher } {
  if (!url.startsWith(unixScheme)) return { url }
  const rest = url.slice(unixScheme.length)
  const slash = rest.indexOf('/')
  const socketPath = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash))
  let dispatcher = unixAgents.get(socketPath)
  if (dispatcher === undefined) {
    dispatcher = new Agent({ connect: { socketPath } })
    unixAgents.set(socketPath, dispatcher)
  }
  return { url: `http://localhost${slash < 0 ? '/' : rest.slice(slash)}`, dispatcher }
}

export async function call (url: string, opts: {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  headers?: Record<string, string>
  body?: string | Buffer
} = {}): Promise<ApiResponse> {
  const to = target(url)
  const res = await request(to.url, {
    ...(to.dispatcher === undefined ? {} : { dispatcher: to.dispatcher }),
    method: opts.method ?? 'GET',
    headers: opts.headers ?? {},
    body: opts.body ?? null,
    headersTimeout: requestTimeoutMs,
    bodyTimeout: requestTimeoutMs,
  })
  const text = await res.body.text()
  let body: any
  try {
    body = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  return { status: res.statusCode, headers: res.headers, body, text }
}

/**
 * A checkout id no other test uses. Letters only after the prefix: a long enough run of digits
 * could pass for a card number, which the node refuses (card_number_detected).
 */
export function newCheckoutId (prefix = 't'): string {
  const letters = [...randomBytes(16)].map((byte) => String.fromCharCode(97 + (byte % 26))).join('')
  return `${prefix}-${letters}`
}

export const validBody = {
  amount: 1999,
  currency: 'EUR',
  payment_method: 'pm_card_visa',
  description: 'Test order',
}

export function createPayment (publicUrl: string, apiKey: string, checkoutId: string,
  body: unknown = validBody, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(`${publicUrl}/payments`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${apiKey}`,
      'x-payment-checkout-id': checkoutId,
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

export function getPayment (publicUrl: string, apiKey: string, checkoutId: string, query = ''): Promise<ApiResponse> {
  return call(`${publicUrl}/payments/${checkoutId}${query}`, { headers: { authorization: `Bearer ${apiKey}` } })
}

/** POST /payments/{id}/cancel with the merchant's key (routed by the id in the path). */
export function cancelPayment (publicUrl: string, apiKey: string, checkoutId: string, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(`${publicUrl}/payments/${checkoutId}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, ...headers } })
}

/** POST /payments/{id}/refunds with the merchant's key and an Idempotency-Key (none when undefined). */
export function refundPayment (publicUrl: string, apiKey: string, checkoutId: string, idempotencyKey: string | undefined,
  body: unknown = {}): Promise<ApiResponse> {
  return call(`${publicUrl}/payments/${checkoutId}/refunds`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      ...(idempotencyKey !== undefined ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

/** GET /payments/{id}/refunds/{refund_id} with the merchant's key. */
export function getRefund (publicUrl: string, apiKey: string, checkoutId: string, refundId: string): Promise<ApiResponse> {
  return call(`${publicUrl}/payments/${checkoutId}/refunds/${refundId}`, { headers: { authorization: `Bearer ${apiKey}` } })
}

/**
 * The test suite's own internal API credential: the stack's `ops` token (operators may read,
 * claim, fail and cancel; only the `processor` token may record a success). nginx adds none.
 */
export function opsToken (): string {
  return loadStackInfo().internalTokens.ops
}

/** The merchant whose checkout ids the tests create unless they say otherwise. */
export const testMerchantId = 'merchant_demo'

/** The merchant an API key of the stack belongs to (the stack's `apiKeys` name them), for the internal reads of its payments. */
export function merchantOfKey (apiKey: string): string {
  const found = Object.entries(loadStackInfo().apiKeys).find(([, key]) => key === apiKey)
  if (found === undefined) throw new Error('not a key of the stack')
  return found[0] === 'merchant_demo_read' ? 'merchant_demo' : found[0]
}

/** The internal API's path of a payment: its merchant, then its checkout id (issue #17 part 5). */
export function internalPaymentPath (checkoutId: string, merchantId = testMerchantId): string {
  return `/internal/payments/${merchantId}/${checkoutId}`
}

/** Reads a payment through nginx's internal listener, with the `ops` token unless another is given. */
export function getInternal (internalUrl: string, checkoutId: string, token = opsToken(), merchantId = testMerchantId): Promise<ApiResponse> {
  return call(`${internalUrl}${internalPaymentPath(checkoutId, merchantId)}`, {
    headers: { 'x-payment-checkout-id': checkoutId, [internalTokenHeader]: token },
  })
}

/**
 * Applies a transition like a processor does, as the `ops` service unless another token is given
 * (a move to succeeded or requires_action needs the processor's): a 409 `idempotency_key_in_use`
 * (another write for the payment, e.g. a PSP webhook, is in flight on the node) is retried a
 * bounded number of times.
 */
export async function transition (internalUrl: string, checkoutId: string, body: Record<string, unknown>,
  token = opsToken(), merchantId = testMerchantId): Promise<ApiResponse> {
  const busyRetriesMax = 20
  const busyRetryDelayMs = 25
  for (let attempt = 0; ; attempt++) {
    const res = await call(`${internalUrl}${internalPaymentPath(checkoutId, merchantId)}/transitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-payment-checkout-id': checkoutId, [internalTokenHeader]: token },
      body: JSON.stringify(body),
    })
    if (res.status !== 409 || res.body?.code !== 'idempotency_key_in_use' || attempt >= busyRetriesMax) return res
    await new Promise((resolve) => setTimeout(resolve, busyRetryDelayMs))
  }
}

/** Reads a payment straight from one node's admin port, bypassing nginx (e.g. with the `audit` token). */
export function getFromNode (adminPort: number, internalToken: string, checkoutId: string, merchantId = testMerchantId): Promise<ApiResponse> {
  return call(`http://127.0.0.1:${adminPort}${internalPaymentPath(checkoutId, merchantId)}`, {
    headers: { [internalTokenHeader]: internalToken },
  })
}

/** Polls `probe` until it returns a value, or fails after `deadlineMs`. */
export async function eventually<T> (probe: () => Promise<T | undefined>, deadlineMs: number, what: string): Promise<T> {
  const pollIntervalMs = 50
  const until = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
}
