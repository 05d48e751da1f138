// The sandbox PSP charge of the e2e bench's own targets (the naive monolith and the async floor):
// one `POST /v1/charges` with the checkout id as idempotency key, retried with the same key on a
// timeout, a 5xx, a 409 or a 429. The same call in both targets, so they differ only in design.

import { Pool } from 'undici'

/** Per target process: connections to the PSP. */
export const pspConnections = 256
/** Per PSP call (the sandbox may hold an answer for 30 s); then retried with the same key. */
export const pspCallTimeoutMs = 10_000
export const pspAttemptsMax = 3
export const pspRetryDelayMs = 200

export interface ChargeResult {
  /** The PSP's charge status, or 'psp_error' when no attempt got an answer we can use. */
  status: string
  id: string | null
}

export function sandboxCharger (o: { url: string, secretKey: string }): { charge: (checkoutId: string, merchantId: string, p: Record<string, unknown>) => Promise<ChargeResult>, close: () => Promise<void> } {
  const psp = new Pool(o.url, { connections: pspConnections, headersTimeout: pspCallTimeoutMs, bodyTimeout: pspCallTimeoutMs })
  const auth = `Bearer ${o.secretKey}`
  async function charge (checkoutId: string, merchantId: string, p: Record<string, unknown>): Promise<ChargeResult> {
    const body = JSON.stringify({ amount: p.amount, currency: p.currency, payment_method: p.payment_method, reference: checkoutId, merchant_id: merchantId, description: p.description })
    for (let attempt = 1; attempt <= pspAttemptsMax; attempt++) {
      try {
        const res = await psp.request({ method: 'POST', path: '/v1/charges', body, headers: { authorization: auth, 'content-type': 'application/json', 'idempotency-key': checkoutId } })
        const answer = await res.body.json() as { status?: string, id?: string }
        if (res.statusCode === 200 || res.statusCode === 201) return { status: String(answer.status), id: answer.id ?? null }
        if (res.statusCode < 500 && res.statusCode !== 429 && res.statusCode !== 409) return { status: 'psp_error', id: null }
      } catch {} // timeout or connection error: retried with the same key
      await new Promise((resolve) => setTimeout(resolve, pspRetryDelayMs * attempt))
    }
    return { status: 'psp_error', id: null }
  }
  return { charge, close: () => psp.close() }
}
