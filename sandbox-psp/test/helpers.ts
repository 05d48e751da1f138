// Test helpers for the sandbox PSP: an in-process PSP on a free loopback port, a tiny webhook
// receiver, and an HTTP call helper with explicit timeouts.

import { EventEmitter } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { createLogger } from '../../lib/log.ts'
import type { PspOptions } from '../config.ts'
import { startSandboxPsp, type SandboxPsp } from '../psp.ts'

process.env.RINGPAY_LOG_LEVEL ??= 'error'

export const secretKey = 'sk_test_sandbox_0123456789'
export const webhookSecret = 'whsec_sandbox_0123456789'
export const auth = { authorization: `Bearer ${secretKey}` }

export interface Tap {
  teardown: (fn: () => unknown) => void
}

export function tempDir (prefix = 'psp-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Starts a PSP in-process; stopped at teardown. */
export async function startPsp (t: Tap, options: Partial<PspOptions> = {}): Promise<SandboxPsp> {
  const psp = await startSandboxPsp({
    dataDir: tempDir(),
    secretKey,
    webhookSecret,
    ...options,
  }, createLogger('sandbox-psp-test'))
  t.teardown(() => psp.stop())
  return psp
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>
  text: string
  body: any
}

export async function call (url: string, opts: {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE'
  headers?: Record<string, string>
  body?: unknown
  timeoutMs?: number
} = {}): Promise<Reply> {
  const timeoutMs = opts.timeoutMs ?? 10_000
  const res = await request(url, {
    method: opts.method ?? 'GET',
    headers: { ...auth, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    body: opts.body === undefined ? null : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  })
  const text = await res.body.text()
  let body: any
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: res.statusCode, headers: res.headers, text, body }
}

let referenceCounter = 0
export function newReference (prefix = 'co'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++referenceCounter}`
}

export interface ChargeBody {
  amount: number
  currency: string
  payment_method: string
  reference: string
  merchant_id: string
  description?: string
}

export function chargeBody (paymentMethod = 'pm_card_visa', overrides: Partial<ChargeBody> = {}): ChargeBody {
  return { amount: 1999, currency: 'EUR', payment_method: paymentMethod, reference: newReference(), merchant_id: 'm_test', ...overrides }
}

/** POST /v1/charges with the reference as idempotency key (as our processors do), unless told otherwise. */
export function charge (psp: SandboxPsp, body: ChargeBody, opts: { key?: string, timeoutMs?: number } = {}): Promise<Reply> {
  return call(`${psp.url}/v1/charges`, {
    method: 'POST',
    headers: { 'idempotency-key': opts.key ?? body.reference },
    body,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  })
}

export async function stats (psp: SandboxPsp): Promise<any> {
  return (await call(`${psp.url}/admin/stats`)).body
}

export async function adminCharges (psp: SandboxPsp, key: string): Promise<any[]> {
  return (await call(`${psp.url}/admin/charges?idempotency_key=${encodeURIComponent(key)}`)).body.data
}

export async function setConfig (psp: SandboxPsp, patch: Record<string, unknown>): Promise<Reply> {
  const reply = await call(`${psp.url}/admin/config`, { method: 'PUT', body: patch })
  if (reply.status !== 200) throw new Error(`PUT /admin/config answered ${reply.status}: ${reply.text}`)
  return reply
}

/** Polls `probe` until it returns a value, or fails after `deadlineMs`. */
export async function eventually<T> (probe: () => Promise<T | undefined> | T | undefined, what: string, deadlineMs = 5_000): Promise<T> {
  const pollIntervalMs = 10
  const until = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
}

export interface ReceivedWebhook {
  path: string
  headers: IncomingHttpHeaders
  body: string
  event: any
  receivedAtMs: number
}

/**
 * A webhook receiver on a free port. `respond` picks the status of each request (default 200);
 * returning 'hang' never answers (the PSP's delivery timeout must cut it).
 */
export class WebhookReceiver extends EventEmitter {
  readonly received: ReceivedWebhook[] = []
  respond: (hook: ReceivedWebhook, index: number) => number | 'hang' = () => 200
  readonly #server: Server

  constructor () {
    super()
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const hook: ReceivedWebhook = { path: req.url ?? '', headers: req.headers, body, event: JSON.parse(body), receivedAtMs: Date.now() }
        const index = this.received.length
        this.received.push(hook)
        this.emit('webhook', hook)
        const status = this.respond(hook, index)
        if (status === 'hang') return
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end('{}')
      })
    })
  }

  async listen (port = 0): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  /** Resolves with the received webhooks once `predicate` holds for them. */
  waitFor (predicate: (received: readonly ReceivedWebhook[]) => boolean, what: string, deadlineMs = 5_000): Promise<ReceivedWebhook[]> {
    if (predicate(this.received)) return Promise.resolve([...this.received])
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('webhook', check)
        reject(new Error(`timed out after ${deadlineMs} ms waiting for ${what}; received ${this.received.length}`))
      }, deadlineMs)
      const check = (): void => {
        if (!predicate(this.received)) return
        clearTimeout(timer)
        this.off('webhook', check)
        resolve([...this.received])
      }
      this.on('webhook', check)
    })
  }

  forReference (reference: string): ReceivedWebhook[] {
    return this.received.filter((hook) => hook.path.endsWith(`/${encodeURIComponent(reference)}`))
  }

  async close (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

export async function startReceiver (t: Tap): Promise<{ receiver: WebhookReceiver, url: string }> {
  const receiver = new WebhookReceiver()
  const url = await receiver.listen()
  t.teardown(() => receiver.close())
  return { receiver, url }
}
