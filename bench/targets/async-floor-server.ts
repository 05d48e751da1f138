// The async API's floor (issue #13): Ringpay's client contract with nothing behind it but memory.
// `POST /payments` (Ringpay's headers and body) answers 202 pending at once and charges the
// sandbox PSP in the background (idempotency key = checkout id, as the monolith); a checkout
// client long-polls `GET /payments/{id}?wait_ms=&after_version=` until the status is final; the
// PSP's webhooks (`POST /webhooks/psp/sandbox/<id>`, signature checked) move a pending payment on.
// No disk, no log, no queue, no projection: a 202 here promises nothing. It is not a design
// anyone should ship; it measures what the contract itself (three requests through nginx per
// payment: the POST, the long-poll, the webhook) costs on this machine, so the bench can say how
// far any design that keeps the contract could get against the monolith.
//
//   BENCH_PORT BENCH_API_KEYS_FILE BENCH_PSP_URL BENCH_PSP_SECRET_KEY BENCH_PSP_WEBHOOK_SECRET
//   node bench/targets/async-floor-server.ts          (GET /healthz: 200)

import type { ServerResponse } from 'node:http'
import { merchantOf, merchantsByKeyDigest, readCreate, readWebhook } from './bench-requests.ts'
import { sandboxCharger } from './sandbox-charge.ts'
import { createTargetServer, listenUntilSignalled, readBodyChunks, sendJsonText, targetPort } from './target-http.ts'

/** Payments kept in memory; past it the oldest is forgotten (a bench run makes far fewer). */
export const paymentsMax = 2_000_000
/** One long-poll's wait at most (Ringpay's node: longPollWaitMsMax). */
export const longPollWaitMsMax = 10_000
/** Long-polls waiting at once; past it a poll is answered at once with the status as it is. */
export const longPollWaitersMax = 50_000

const terminalStatuses = new Set(['succeeded', 'failed', 'canceled'])

interface FloorPayment {
  merchantId: string
  status: string
  version: number
  pspReference: string | null
  waiters: Set<() => void>
}

const env = (name: string): string => process.env[name] || (() => { throw new Error(`${name} is required`) })()
const merchants = merchantsByKeyDigest(env('BENCH_API_KEYS_FILE'))
const psp = sandboxCharger({ url: env('BENCH_PSP_URL'), secretKey: env('BENCH_PSP_SECRET_KEY') })
const webhookSecret = env('BENCH_PSP_WEBHOOK_SECRET')
const payments = new Map<string, FloorPayment>()
let waiting = 0

const send = (res: ServerResponse, status: number, body: unknown): void => sendJsonText(res, status, JSON.stringify(body))
const view = (id: string, p: FloorPayment): unknown => ({ checkout_id: id, status: p.status, version: p.version, psp_reference: p.pspReference })

function advance (p: FloorPayment, status: string, pspReference: string | null): void {
  if (terminalStatuses.has(p.status) || status === p.status) return
  p.status = status
  p.version++
  if (pspReference !== null) p.pspReference = pspReference
  for (const wake of p.waiters) wake()
  p.waiters.clear()
}

function remember (id: string, p: FloorPayment): void {
  if (payments.size >= paymentsMax) payments.delete(payments.keys().next().value!)
  payments.set(id, p)
}

function longPoll (res: ServerResponse, id: string, p: FloorPayment, afterVersion: number, waitMs: number): void {
  if (p.version > afterVersion || terminalStatuses.has(p.status) || waitMs <= 0 || waiting >= longPollWaitersMax) return send(res, 200, view(id, p))
  waiting++
  const done = (): void => {
    waiting--
    clearTimeout(timer)
    p.waiters.delete(done)
    send(res, 200, view(id, p))
  }
  const timer = setTimeout(done, Math.min(waitMs, longPollWaitMsMax))
  p.waiters.add(done)
  res.on('close', () => {
    if (!p.waiters.delete(done)) return
    waiting--
    clearTimeout(timer)
  })
}

const server = createTargetServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'alive' })
  if (req.method === 'GET' && req.url?.startsWith('/payments/') === true) {
    const url = new URL(req.url, 'http://floor')
    const id = decodeURIComponent(url.pathname.slice('/payments/'.length))
    const merchantId = merchantOf(merchants, req.headers.authorization)
    if (merchantId === undefined) return send(res, 401, { code: 'unauthorized' })
    const p = payments.get(id)
    if (p === undefined || p.merchantId !== merchantId) return send(res, 404, { code: 'payment_not_found' })
    return longPoll(res, id, p, Number(url.searchParams.get('after_version') ?? 0), Number(url.searchParams.get('wait_ms') ?? 0))
  }
  readBodyChunks(req, (chunks, bytes) => {
    const text = Buffer.concat(chunks).toString('utf8')
    const webhook = readWebhook(webhookSecret, req, text)
    if (webhook.kind === 'refused') return send(res, 400, { code: 'webhook_signature_invalid' })
    if (webhook.kind === 'charge') {
      const p = payments.get(webhook.checkoutId)
      const status = webhook.charge?.status
      if (p !== undefined && p.status === 'pending' && status !== undefined && status !== 'pending') advance(p, status, webhook.charge?.id ?? null)
      return send(res, 200, { received: true })
    }
    if (req.method !== 'POST' || req.url !== '/payments') return send(res, 404, { code: 'not_found' })
    const create = readCreate(merchants, req, text, bytes)
    if (!create.ok) return send(res, create.status, { code: create.code })
    const { checkoutId, merchantId, body } = create
    if (payments.has(checkoutId)) return send(res, 409, { code: 'idempotency_key_in_use' })
    const p: FloorPayment = { merchantId, status: 'pending', version: 1, pspReference: null, waiters: new Set() }
    remember(checkoutId, p)
    send(res, 202, view(checkoutId, p))
    // A PSP that never answered leaves the payment failed here: the floor has no watchdog to ask again.
    void psp.charge(checkoutId, merchantId, body).then((c) => advance(p, c.status === 'psp_error' ? 'failed' : c.status, c.id))
  })
})
listenUntilSignalled(server, targetPort(), () => psp.close())
