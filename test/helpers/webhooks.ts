// A merchant's webhook receiver for tests (on 127.0.0.1: the stack's notifier runs in dev mode,
// which allows loopback endpoints), and helpers for the notifier's API through nginx.

import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { call, type ApiResponse } from './api.ts'

export interface ReceivedWebhook {
  headers: IncomingMessage['headers']
  raw: string
  body: any
  receivedAtMs: number
  /** When our answer was finished (after the responder's delay). */
  answeredAtMs: number | undefined
  /** When the connection closed under the request (the sender gave up, e.g. its timeout), if it did before our answer. */
  abortedAtMs: number | undefined
}

/** What to answer a request: status and an optional delay before answering. */
export type Responder = (request: ReceivedWebhook, index: number) => { status: number, delayMs?: number }

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = []
  readonly #server: Server
  responder: Responder

  private constructor (server: Server, responder: Responder) {
    this.#server = server
    this.responder = responder
  }

  static async start (responder: Responder = () => ({ status: 200 })): Promise<WebhookReceiver> {
    const server = createServer()
    const receiver = new WebhookReceiver(server, responder)
    server.on('request', (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        let body: any
        try { body = JSON.parse(raw) } catch { body = undefined }
        const entry: ReceivedWebhook = { headers: req.headers, raw, body, receivedAtMs: Date.now(), answeredAtMs: undefined, abortedAtMs: undefined }
        res.on('close', () => { if (entry.answeredAtMs === undefined && !res.writableFinished) entry.abortedAtMs = Date.now() })
        const index = receiver.received.push(entry) - 1
        const { status, delayMs } = receiver.responder(entry, index)
        const answer = (): void => {
          res.writeHead(status, { 'content-type': 'text/plain' })
          res.end(status < 300 ? 'ok' : 'nope', () => { entry.answeredAtMs = Date.now() })
        }
        if (delayMs !== undefined && delayMs > 0) setTimeout(answer, delayMs)
        else answer()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return receiver
  }

  get url (): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hooks`
  }

  /** The requests for one payment, in arrival order. */
  forCheckout (checkoutId: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.body?.checkout_id === checkoutId)
  }

  async close (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** Polls `probe` until it returns a value other than undefined, or fails past the deadline. */
export async function pollUntil<T> (what: string, probe: () => T | undefined | Promise<T | undefined>, deadlineMs = 30_000, intervalMs = 50): Promise<T> {
  const end = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export function notifierCall (publicUrl: string, key: string | undefined, method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, body?: unknown,
  headers: Record<string, string> = {}): Promise<ApiResponse> {
  return call(`${publicUrl}${path}`, {
    method,
    headers: {
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
}

export async function createEndpoint (publicUrl: string, key: string, url: string, events: string[] = ['*']): Promise<{ id: string, secret: string }> {
  const res = await notifierCall(publicUrl, key, 'POST', '/webhook_endpoints', { url, events })
  if (res.status !== 201) throw new Error(`creating an endpoint: ${res.status} ${res.text}`)
  return { id: res.body.id, secret: res.body.secret }
}
