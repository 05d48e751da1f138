// The Nimbus sandbox PSP (issue #16): a second provider whose API differs from the sandbox's in
// style, as Adyen's does from Stripe's. It reuses the sandbox PSP's engine, started in-process on a
// loopback port of its own (durable idempotency records, fault injection, latency, the admin index
// of charges per key), behind its own facade:
//
//   POST /v1/payments                         {merchantAccount, amount: {value, currency}, reference,
//                                              paymentMethod: {type, storedPaymentMethodId}, shopperStatement?}
//                                             Idempotency-Key required. Answers {pspReference,
//                                             resultCode: "Received" | "RedirectShopper" (+ action.url),
//                                             merchantReference}: the outcome comes by notification.
//   GET  /v1/payments?merchantReference=<ref> {payments: [{pspReference, merchantReference, amount, status}]}
//                                             (status Authorised | Refused | Pending | RedirectShopper | Cancelled)
//   POST /v1/payments/<psp ref>/refunds       {amount: {value, currency}, reference} + Idempotency-Key:
//                                             {pspReference, paymentPspReference, reference, status: "received"}
//   GET  /v1/refunds?idempotencyKey=<key>     {refunds: [{pspReference, paymentPspReference, reference, amount, status}]}
//   POST /v1/payments/<psp ref>/cancels       {paymentPspReference, status: "cancelled"}, or 422 not_cancelable
//   GET  /v1/reports/settlement/<YYYY-MM-DD>.csv   its own report format (settlement-report.ts)
//   GET|PUT /admin/config, GET /admin/stats, GET /admin/charges, GET /admin/refunds: the engine's
//   GET /healthz, GET /metrics (the engine's, plus nimbus_* lines)
//
// Authentication: `X-API-Key: <apiKey>` (not a bearer token). Errors: {status, errorCode, message,
// errorType}. Notifications: batched, one HMAC per item (notifications.ts, signature.ts).
// Manual capture is not offered: routing sends manual-capture payments elsewhere.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { createLogger, type Logger } from '../lib/log.ts'
import { startSandboxPsp, type SandboxPsp } from '../sandbox-psp/psp.ts'
import type { RuntimeConfig } from '../sandbox-psp/config.ts'
import { verifyWebhookSignature } from '../sandbox-psp/signature.ts'
import { defaultNotificationLimits, itemOfEngineEvent, NotificationBatcher, type NotificationLimits } from './notifications.ts'
import { writeSettlementReport } from './settlement-report.ts'

export interface NimbusOptions {
  host?: string
  port?: number
  dataDir: string
  apiKey: string
  /** The notification items' HMAC key. */
  hmacKey: string
  /** Where notification batches go: <base>/webhooks/psp/nimbus/<merchantReference>. null: none. */
  notificationBaseUrl: string | null
  /** The engine's runtime settings (latency, fault rates). */
  runtime?: Partial<Omit<RuntimeConfig, 'webhookBaseUrl'>>
  notificationLimits?: Partial<NotificationLimits>
}

export interface NimbusPsp {
  url: string
  port: number
  engine: SandboxPsp
  stop: () => Promise<void>
}

/** The engine's webhooks come back here (loopback, signed with a secret made for this process). */
const enginePathPrefix = '/engine'
const bodyBytesMax = 64 * 1024
const engineCallTimeoutMs = 30_000

class NimbusError extends Error {
  readonly status: number
  readonly errorCode: string
  readonly headers: Record<string, string>
  constructor (status: number, errorCode: string, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.errorCode = errorCode
    this.headers = headers
  }
}

function send (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

function sendError (res: ServerResponse, error: NimbusError): void {
  if (res.headersSent) { res.destroy(); return }
  const errorType = error.status >= 500 ? 'internal' : error.status === 401 ? 'security' : 'validation'
  send(res, error.status, { status: error.status, errorCode: error.errorCode, message: error.message, errorType }, error.headers)
}

async function readText (req: IncomingMessage): Promise<string> {
  let bytes = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > bodyBytesMax) throw new NimbusError(413, 'body_too_large', `body must be at most ${bodyBytesMax} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

async function readObject (req: IncomingMessage): Promise<Record<string, any>> {
  const text = await readText(req)
  try {
    const body = text === '' ? {} : JSON.parse(text)
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object')
    return body
  } catch {
    throw new NimbusError(400, 'invalid_json', 'body must be a JSON object')
  }
}

/** The engine's charge status as Nimbus names it. */
const statusOfCharge: Readonly<Record<string, string>> = {
  succeeded: 'Authorised', failed: 'Refused', pending: 'Pending', requires_action: 'RedirectShopper', canceled: 'Cancelled', requires_capture: 'Authorised',
}

const merchantAccountPattern = /^[A-Za-z0-9_-]{1,64}$/

export async function startNimbusPsp (options: NimbusOptions, log: Logger = createLogger('nimbus-psp')): Promise<NimbusPsp> {
  const host = options.host ?? '127.0.0.1'
  const apiKeyDigest = createHash('sha256').update(options.apiKey).digest()
  const engineKey = `sk_engine_${randomBytes(18).toString('base64url')}`
  const engineWebhookSecret = `whsec_${randomBytes(24).toString('base64url')}`
  const limits = { ...defaultNotificationLimits, ...options.notificationLimits }
  let engine: SandboxPsp | undefined
  let enginePool: Pool | undefined
  const batcher = new NotificationBatcher({ limits, hmacKey: options.hmacKey, baseUrl: () => options.notificationBaseUrl, log })

  const engineCall = async (method: 'GET' | 'POST' | 'PUT', path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number, body: any, headers: Record<string, string> }> => {
    const res = await enginePool!.request({
      method, path, headers: { ...headers, authorization: `Bearer ${engineKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body } : {}),
      headersTimeout: engineCallTimeoutMs, bodyTimeout: engineCallTimeoutMs,
    })
    const text = await res.body.text()
    const retryAfter = res.headers['retry-after']
    return { status: res.statusCode, body: text === '' ? undefined : JSON.parse(text), headers: typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {} }
  }

  /** An engine refusal in Nimbus' terms (same status, its own codes). */
  const refusal = (answer: { status: number, body: any, headers: Record<string, string> }): NimbusError => {
    const code = String(answer.body?.error?.code ?? 'error')
    const message = String(answer.body?.error?.message ?? '').slice(0, 300)
    if (answer.status === 409) return new NimbusError(409, 'request_in_progress', 'a request with this Idempotency-Key is in progress')
    if (answer.status === 422 && code === 'idempotency_key_mismatch') return new NimbusError(422, 'idempotency_mismatch', 'this Idempotency-Key was used with other parameters')
    if (answer.status === 429) return new NimbusError(429, 'too_many_requests', 'rate limited', answer.headers)
    if (answer.status >= 500) return new NimbusError(answer.status, 'service_unavailable', `${code}: ${message}`)
    return new NimbusError(answer.status === 404 ? 404 : 422, code, message)
  }

  const idempotencyKey = (req: IncomingMessage): string => {
    const key = req.headers['idempotency-key']
    if (typeof key !== 'string' || key === '') throw new NimbusError(400, 'idempotency_key_required', 'Idempotency-Key header required')
    return key
  }

  const paymentView = (charge: any): Record<string, unknown> => ({
    pspReference: charge.id, merchantReference: charge.reference, amount: { value: charge.amount, currency: charge.currency },
    status: statusOfCharge[charge.status] ?? 'Unknown',
    ...(charge.failure_code !== undefined ? { refusalReason: `${String(charge.failure_code)}: ${String(charge.failure_message ?? '')}` } : {}),
  })

  const routes = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://nimbus')
    const path = url.pathname
    // The facade listens before its engine is up (the engine needs its port): until then, not ready.
    if (enginePool === undefined) throw new NimbusError(503, 'service_unavailable', 'starting')
    if (path === '/healthz') return send(res, 200, { status: 'ok' })
    if (path.startsWith(enginePathPrefix + '/')) return engineWebhook(req, res)
    if (path === '/metrics') {
      const answer = await enginePool!.request({ method: 'GET', path: '/metrics' })
      const text = await answer.body.text()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
      res.end(`${text}# HELP nimbus_notification_batches_sent_total Notification batches accepted by the receiver.\n# TYPE nimbus_notification_batches_sent_total counter\nnimbus_notification_batches_sent_total ${batcher.batchesSent}\n` +
        `# HELP nimbus_notification_items_sent_total Notification items in accepted batches.\n# TYPE nimbus_notification_items_sent_total counter\nnimbus_notification_items_sent_total ${batcher.itemsSent}\n` +
        `# HELP nimbus_notification_items_queued Items waiting for their batch.\n# TYPE nimbus_notification_items_queued gauge\nnimbus_notification_items_queued ${batcher.queued}\n`)
      return
    }
    const given = req.headers['x-api-key']
    if (typeof given !== 'string' || !timingSafeEqual(createHash('sha256').update(given).digest(), apiKeyDigest)) {
      throw new NimbusError(401, 'unauthorized', 'X-API-Key missing or invalid')
    }
    if (path === '/v1/payments' && req.method === 'POST') {
      const key = idempotencyKey(req)
      const body = await readObject(req)
      // One merchant account per merchant of the platform (Ringpay's merchant id): the sandbox opens
      // an account on first use. Notifications and the report name it (merchantAccountCode, under
      // the item's HMAC), which is how the platform knows whose payment an item is about.
      if (typeof body.merchantAccount !== 'string' || !merchantAccountPattern.test(body.merchantAccount)) {
        throw new NimbusError(422, 'invalid_merchant_account', 'merchantAccount: 1-64 of A-Z a-z 0-9 _ -')
      }
      const amount = body.amount
      if (typeof amount !== 'object' || amount === null || !Number.isSafeInteger(amount.value) || typeof amount.currency !== 'string') {
        throw new NimbusError(422, 'invalid_amount', 'amount must be {value: integer minor units, currency}')
      }
      if (typeof body.reference !== 'string' || typeof body.paymentMethod?.storedPaymentMethodId !== 'string') {
        throw new NimbusError(422, 'invalid_field', 'reference and paymentMethod.storedPaymentMethodId are required')
      }
      const answer = await engineCall('POST', '/v1/charges', { 'idempotency-key': key }, JSON.stringify({
        amount: amount.value, currency: amount.currency, payment_method: body.paymentMethod.storedPaymentMethodId,
        reference: body.reference, merchant_id: body.merchantAccount,
        ...(typeof body.shopperStatement === 'string' ? { description: body.shopperStatement } : {}),
      }))
      if (answer.status !== 200 && answer.status !== 201) throw refusal(answer)
      const charge = answer.body
      const redirect = charge.status === 'requires_action' ? charge.next_action?.redirect_to_url?.url : undefined
      return send(res, 200, {
        pspReference: charge.id, merchantReference: charge.reference,
        ...(typeof redirect === 'string' ? { resultCode: 'RedirectShopper', action: { type: 'redirect', url: redirect } } : { resultCode: 'Received' }),
      })
    }
    if (path === '/v1/payments' && req.method === 'GET') {
      const reference = url.searchParams.get('merchantReference')
      if (reference === null || reference === '') throw new NimbusError(422, 'invalid_field', 'merchantReference required')
      const account = url.searchParams.get('merchantAccount')
      // By reference: it outlives the engine's key retention (issue #16).
      const answer = await engineCall('GET', `/v1/charges?reference=${encodeURIComponent(reference)}${account === null ? '' : `&merchant_id=${encodeURIComponent(account)}`}`)
      if (answer.status !== 200) throw refusal(answer)
      // A reference is the merchant's own: another account's payment under it is not in the answer.
      return send(res, 200, { payments: (answer.body.data as any[]).map(paymentView) })
    }
    const modification = /^\/v1\/payments\/([A-Za-z0-9_-]{1,128})\/(refunds|cancels)$/.exec(path)
    if (modification !== null && req.method === 'POST') {
      const [, pspReference, kind] = modification
      if (kind === 'cancels') {
        await readText(req)
        const answer = await engineCall('POST', `/v1/charges/${pspReference}/cancel`)
        if (answer.status === 400 && answer.body?.error?.code === 'charge_not_cancelable') {
          throw new NimbusError(422, 'not_cancelable', String(answer.body.error.message ?? '').slice(0, 300))
        }
        if (answer.status !== 200) throw refusal(answer)
        return send(res, 200, { paymentPspReference: pspReference, status: answer.body.status === 'canceled' ? 'cancelled' : 'received' })
      }
      const key = idempotencyKey(req)
      const body = await readObject(req)
      if (!Number.isSafeInteger(body.amount?.value) || typeof body.reference !== 'string') {
        throw new NimbusError(422, 'invalid_field', 'amount {value, currency} and reference are required')
      }
      const answer = await engineCall('POST', '/v1/refunds', { 'idempotency-key': key }, JSON.stringify({ charge: pspReference, amount: body.amount.value, reference: body.reference }))
      if (answer.status !== 200 && answer.status !== 201) throw refusal(answer)
      return send(res, 201, { pspReference: answer.body.id, paymentPspReference: pspReference, reference: answer.body.reference, status: 'received' })
    }
    if (path === '/v1/refunds' && req.method === 'GET') {
      const key = url.searchParams.get('idempotencyKey')
      if (key === null || key === '') throw new NimbusError(422, 'invalid_field', 'idempotencyKey required')
      const answer = await engineCall('GET', `/v1/refunds?idempotency_key=${encodeURIComponent(key)}`)
      if (answer.status !== 200) throw refusal(answer)
      return send(res, 200, {
        refunds: (answer.body.data as any[]).map((r) => ({
          pspReference: r.id, paymentPspReference: r.charge, reference: r.reference, amount: { value: r.amount, currency: r.currency },
          status: r.status === 'succeeded' ? 'Refunded' : r.status === 'failed' ? 'Failed' : 'Received',
        })),
      })
    }
    const report = /^\/v1\/reports\/settlement\/(\d{4}-\d{2}-\d{2})\.csv$/.exec(path)
    if (report !== null && req.method === 'GET') {
      const answer = await enginePool!.request({ method: 'GET', path: `/v1/settlements/${report[1]}.csv`, headers: { authorization: `Bearer ${engineKey}` } })
      if (answer.statusCode !== 200) {
        await answer.body.dump()
        throw new NimbusError(answer.statusCode === 404 ? 404 : 503, 'report_unavailable', `settlement report answered ${answer.statusCode}`)
      }
      res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8' })
      await writeSettlementReport(answer.body, res)
      res.end()
      return
    }
    // The engine's own controls (fault injection, the outcome check's index), under Nimbus' key.
    if (path === '/admin/config' || path === '/admin/stats' || path === '/admin/charges' || path === '/admin/refunds') {
      const body = req.method === 'PUT' ? await readText(req) : undefined
      if (body !== undefined && /webhookBaseUrl/.test(body)) throw new NimbusError(422, 'invalid_field', 'the engine\'s webhookBaseUrl is Nimbus\' own')
      const answer = await engineCall(req.method === 'PUT' ? 'PUT' : 'GET', path + url.search, {}, body)
      return send(res, answer.status, answer.body)
    }
    throw new NimbusError(404, 'not_found', `no route ${req.method ?? ''} ${path.slice(0, 100)}`)
  }

  /** One engine event: verified, turned into an item, answered once its batch was accepted (or not). */
  const engineWebhook = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const text = await readText(req)
    const header = req.headers['ringpay-signature']
    const check = verifyWebhookSignature(engineWebhookSecret, typeof header === 'string' ? header : undefined, text, Math.floor(Date.now() / 1000))
    if (!check.ok) throw new NimbusError(401, 'unauthorized', check.reason)
    const item = itemOfEngineEvent(JSON.parse(text))
    if (item === undefined) return send(res, 200, { skipped: true })
    const delivered = await batcher.enqueue(item)
    if (delivered) send(res, 200, { delivered: true })
    else send(res, 503, { delivered: false })
  }

  const server = createServer({ requestTimeout: 60_000, keepAliveTimeout: 65_000 }, (req, res) => {
    routes(req, res).catch((error: unknown) => {
      if (error instanceof NimbusError) return sendError(res, error)
      log.error({ err: error, url: req.url?.split('?')[0] }, 'request failed unexpectedly')
      sendError(res, new NimbusError(500, 'internal_error', 'internal error'))
    })
  })
  server.listen(options.port ?? 0, host)
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const url = `http://${host}:${port}`
  try {
    engine = await startSandboxPsp({
      host: '127.0.0.1',
      port: 0,
      dataDir: options.dataDir,
      secretKey: engineKey,
      webhookSecret: engineWebhookSecret,
      runtime: { ...options.runtime, webhookBaseUrl: `http://127.0.0.1:${port}${enginePathPrefix}` },
    }, log.child({ part: 'engine' }))
  } catch (error) {
    server.close()
    throw error
  }
  enginePool = new Pool(engine.url, { connections: 128, keepAliveTimeout: 30_000 })
  log.info({ host, port, engine: engine.url, notifications: options.notificationBaseUrl }, 'nimbus PSP listening')
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    await batcher.close()
    await engine!.stop()
    server.closeAllConnections()
    await closed
    await enginePool!.close()
  }
  return { url, port, engine, stop: () => (stopping ??= stop()) }
}
