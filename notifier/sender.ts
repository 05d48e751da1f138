// One HTTP attempt of a delivery (undici). Bounded in time (deliveryTimeoutMs over the whole
// attempt), in what is read of the answer (responseBytesMax), never following a redirect (a 3xx
// is a failed attempt: a redirect could point anywhere, the SSRF check covers only the URL the
// merchant registered), and connecting only to addresses ssrf.ts allows, checked at connect time.

import { Agent, request } from 'undici'
import { signatureHeader, signWebhookWithSecrets } from '../lib/webhook-signature.ts'
import { assertHostAllowed, checkedLookup, parseEndpointUrl, UrlRefused, type UrlPolicy } from './ssrf.ts'

export interface SendResult {
  /** The endpoint's status, when it answered. */
  httpStatus: number | undefined
  ok: boolean
  /** Why it failed, for the attempt record and the merchant (no secret, no body of ours). */
  error: string | undefined
  latencyMs: number
}

export interface SenderOptions {
  policy: UrlPolicy
  deliveryTimeoutMs: number
  responseBytesMax: number
  responseErrorCharsMax: number
  urlCharsMax: number
  userAgent: string
}

export class Sender {
  readonly #agent: Agent
  readonly #options: SenderOptions

  constructor (options: SenderOptions) {
    this.#options = options
    this.#agent = new Agent({
      connect: { timeout: options.deliveryTimeoutMs, lookup: checkedLookup(options.policy) as never },
      headersTimeout: options.deliveryTimeoutMs,
      bodyTimeout: options.deliveryTimeoutMs,
      keepAliveTimeout: 10_000,
      // Per origin; the dispatcher's per-endpoint bound is what limits them.
      connections: 8,
    })
  }

  async send (url: string, eventId: string, body: string, secrets: readonly string[], nowMs: number = Date.now()): Promise<SendResult> {
    const startedAt = performance.now()
    const elapsed = (): number => performance.now() - startedAt
    try {
      const parsed = parseEndpointUrl(url, this.#options.policy, this.#options.urlCharsMax)
      // IP literals never reach the lookup: checked here. Names: here, and again at connect.
      await assertHostAllowed(parsed, this.#options.policy)
      const signal = AbortSignal.timeout(this.#options.deliveryTimeoutMs)
      const res = await request(parsed, {
        method: 'POST',
        dispatcher: this.#agent,
        signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': this.#options.userAgent,
          [signatureHeader]: signWebhookWithSecrets(secrets, Math.floor(nowMs / 1000), body),
          'ringpay-event-id': eventId,
        },
        body,
      })
      const text = await readCapped(res.body, this.#options.responseBytesMax)
      const ok = res.statusCode >= 200 && res.statusCode < 300
      return {
        httpStatus: res.statusCode,
        ok,
        error: ok ? undefined : `HTTP ${res.statusCode}${text === '' ? '' : `: ${text.slice(0, this.#options.responseErrorCharsMax)}`}`,
        latencyMs: elapsed(),
      }
    } catch (error) {
      return { httpStatus: undefined, ok: false, error: describe(error, this.#options.deliveryTimeoutMs), latencyMs: elapsed() }
    }
  }

  async close (): Promise<void> {
    await this.#agent.close()
  }
}

async function readCapped (body: AsyncIterable<Buffer> & { destroy: () => void }, bytesMax: number): Promise<string> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of body) {
    chunks.push(chunk)
    bytes += chunk.length
    if (bytes >= bytesMax) {
      body.destroy()
      break
    }
  }
  // Control characters out: the text goes into a JSON answer and logs.
  return Buffer.concat(chunks).subarray(0, bytesMax).toString('utf8').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim()
}

function describe (error: unknown, timeoutMs: number): string {
  if (error instanceof UrlRefused) return error.message
  const e = error as { name?: string, code?: string, message?: string, cause?: unknown }
  if (e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return `timeout: no complete answer within ${timeoutMs} ms`
  }
  // A refusal by checkedLookup surfaces as the connect error itself.
  if (e.cause instanceof UrlRefused) return e.cause.message
  return `${e.code ?? e.name ?? 'error'}: ${String(e.message ?? error).slice(0, 200)}`
}
