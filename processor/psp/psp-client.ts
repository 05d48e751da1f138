// The HTTP side of talking to the sandbox PSP: one undici pool, explicit timeouts per phase, the
// idempotency keys derived from the payment's merchant and checkout id (psp/types.ts). Stateless apart from the connection pool.

import { errors as undiciErrors, type Pool } from 'undici'
import { keepAlivePool } from '../keep-alive-pool.ts'
import {
  cancelOutcomeOfSandboxResponse, captureOutcomeOfSandboxResponse, outcomeOfSandboxCharge, toSandboxCaptureBody, outcomeOfSandboxRefund, outcomeOfSandboxResponse, refundOutcomeOfSandboxResponse, toSandboxChargeBody,
  toSandboxRefundBody, type SandboxCharge, type SandboxRefund,
} from './sandbox.ts'
import type { PspProvider } from './provider.ts'
import { sandboxProvider } from './sandbox.ts'
import { captureIdempotencyKey, chargeIdempotencyKey, PspError, refundIdempotencyKey, type CancelOutcome, type CaptureOutcome, type CaptureRequest, type ChargeOutcome, type ChargeRequest, type RefundOutcome, type RefundRequest } from './types.ts'

export interface PspClientOptions {
  baseUrl: string
  secretKey: string
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  connectionsMax: number
}

export interface ChargeCall {
  outcome: ChargeOutcome
  httpStatus: number
  responseBody: unknown
  latencyMs: number
}

export interface RefundCall {
  outcome: RefundOutcome
  httpStatus: number
  responseBody: unknown
  latencyMs: number
}

export interface CaptureCall {
  outcome: CaptureOutcome
  httpStatus: number
  responseBody: unknown
  latencyMs: number
}

export interface CancelCall {
  outcome: CancelOutcome
  httpStatus: number
  responseBody: unknown
  latencyMs: number
}

/**
 * Classifies a transport failure where it happens: every one of these may be retried. A refused
 * or timed-out connect never carried the request (issue #16: `notReceived`, evidence for failover);
 * anything later (a timeout, a reset) may have charged.
 */
export function transportError (error: unknown): PspError {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError) {
    return new PspError('psp_timeout', 'no answer in time (the charge may have happened: retry with the same key)', { cause: error })
  }
  if (error instanceof undiciErrors.ConnectTimeoutError) return new PspError('psp_connection', 'connect timed out', { cause: error, notReceived: true })
  const code = (error as { code?: unknown } | null)?.code
  const refused = code === 'ECONNREFUSED'
  return new PspError('psp_connection', (error as Error)?.message ?? 'connection failed', { cause: error, ...(refused ? { notReceived: true } : {}) })
}

/** The pool every PSP adapter calls its provider through: bounded connections and timeouts, keep-alive. */
export function pspPool (options: Omit<PspClientOptions, 'secretKey'>): Pool {
  return keepAlivePool(options.baseUrl, options)
}

/** A PSP's answer as the adapters map it: status, JSON body (undefined when empty), Retry-After. */
export interface PspAnswer { httpStatus: number, body: unknown, retryAfter: string | undefined }

/**
 * One request to a PSP over its pool (any provider: the transport and the JSON reading are the
 * same; what the body means is the adapter's). A failure to get an answer is a typed transport
 * error; a body that is not JSON is psp_bad_response.
 */
export async function requestPsp (pool: Pool, method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string, signal?: AbortSignal): Promise<PspAnswer> {
  let res
  try {
    res = await pool.request({
      path,
      method,
      headers: body !== undefined && headers['content-type'] === undefined ? { ...headers, 'content-type': 'application/json' } : headers,
      ...(body !== undefined ? { body } : {}),
      ...(signal ? { signal } : {}),
    })
  } catch (error) {
    throw transportError(error)
  }
  let parsed: unknown
  try {
    const text = await res.body.text()
    parsed = text.length > 0 ? JSON.parse(text) : undefined
  } catch (error) {
    if (error instanceof SyntaxError) throw new PspError('psp_bad_response', 'body is not JSON', { httpStatus: res.statusCode, cause: error })
    throw transportError(error)
  }
  const retryAfter = res.headers['retry-after']
  return { httpStatus: res.statusCode, body: parsed, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined }
}

export class PspClient implements PspProvider {
  readonly name = sandboxProvider
  readonly manualCapture = true
  chargeBody = toSandboxChargeBody
  refundBody = toSandboxRefundBody

  readonly #pool: Pool
  readonly #options: PspClientOptions

  constructor (options: PspClientOptions) {
    this.#options = options
    this.#pool = pspPool(options)
  }

  /** One charge attempt. Throws PspError; `error.retriable` says whether to try again. */
  async charge (request: ChargeRequest, signal?: AbortSignal): Promise<ChargeCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#post('/v1/charges', {
      'content-type': 'application/json',
      'idempotency-key': chargeIdempotencyKey(request.merchantId, request.checkoutId),
    }, JSON.stringify(toSandboxChargeBody(request)), signal)
    const outcome = outcomeOfSandboxResponse(httpStatus, body, retryAfter, request)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  /**
   * One attempt to cancel a charge awaiting the customer (a canceled payment's). Idempotent at the
   * PSP, so a retry after a timeout is safe. Throws PspError; `error.retriable` says whether to retry.
   */
  async cancelCharge (pspReference: string): Promise<CancelCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#post(`/v1/charges/${encodeURIComponent(pspReference)}/cancel`, {})
    const outcome = cancelOutcomeOfSandboxResponse(httpStatus, body, retryAfter, pspReference)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  /**
   * One attempt to capture a manual payment's authorization, idempotency key derived from the
   * merchant and checkout id (the same on every attempt, forever). Throws PspError; `error.retriable` says
   * whether to try again.
   */
  async capture (request: CaptureRequest): Promise<CaptureCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#post(`/v1/charges/${encodeURIComponent(request.chargeReference)}/capture`, {
      'content-type': 'application/json',
      'idempotency-key': captureIdempotencyKey(request.merchantId, request.checkoutId),
    }, JSON.stringify(toSandboxCaptureBody(request)))
    const outcome = captureOutcomeOfSandboxResponse(httpStatus, body, retryAfter, request)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  /**
   * One refund attempt, idempotency key derived from the refund id (the same on every attempt,
   * forever). Throws PspError; `error.retriable` says whether to try again.
   */
  async refund (request: RefundRequest): Promise<RefundCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#post('/v1/refunds', {
      'content-type': 'application/json',
      'idempotency-key': refundIdempotencyKey(request.refundId),
    }, JSON.stringify(toSandboxRefundBody(request)))
    const outcome = refundOutcomeOfSandboxResponse(httpStatus, body, retryAfter, request)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  /** One authenticated POST; the answer's status, its JSON body (undefined when empty) and Retry-After. */
  async #post (path: string, headers: Record<string, string>, body?: string, signal?: AbortSignal): Promise<PspAnswer> {
    return requestPsp(this.#pool, 'POST', path, { ...headers, authorization: `Bearer ${this.#options.secretKey}` }, body, signal)
  }

  /**
   * The charge made for this payment, if any (the watchdog's and the re-drive's question). Found
   * by its reference, not its idempotency key (issue #16): a key is forgotten after the PSP's
   * retention (~24 h), the charge is not. The oldest one: a later one would be the double charge.
   */
  async findCharge (request: ChargeRequest): Promise<ChargeOutcome | undefined> {
    // By reference, not idempotency key: a PSP forgets keys after its retention (issue #16), not
    // charges. A reference (our checkout id) is per merchant (#17 part 5): another merchant's
    // charge under the same reference is not this payment's.
    const charge = (await this.#list<SandboxCharge>(`/v1/charges?reference=${encodeURIComponent(request.checkoutId)}&merchant_id=${encodeURIComponent(request.merchantId)}`))
      .find((c) => c.merchant_id === request.merchantId)
    return charge === undefined ? undefined : outcomeOfSandboxCharge(charge, request)
  }

  /** The refund made under the refund's idempotency key, if any (the watchdog's question). */
  async findRefund (request: RefundRequest): Promise<RefundOutcome | undefined> {
    const refund = (await this.#list<SandboxRefund>(`/v1/refunds?idempotency_key=${encodeURIComponent(refundIdempotencyKey(request.refundId))}`))[0]
    return refund === undefined ? undefined : outcomeOfSandboxRefund(refund, request)
  }

  /** One of the PSP's list endpoints: its `data`, or a PspError. */
  async #list<T> (path: string): Promise<T[]> {
    let res
    try {
      res = await this.#pool.request({ path, method: 'GET', headers: { authorization: `Bearer ${this.#options.secretKey}` } })
    } catch (error) {
      throw transportError(error)
    }
    const body = await res.body.json().catch((error: unknown) => {
      throw new PspError('psp_bad_response', 'list body is not JSON', { httpStatus: res.statusCode, cause: error })
    }) as { data?: T[] }
    if (res.statusCode >= 500) throw new PspError('psp_unavailable', `answered ${res.statusCode}`, { httpStatus: res.statusCode })
    if (res.statusCode !== 200 || !Array.isArray(body.data)) {
      throw new PspError('psp_bad_response', `list answered ${res.statusCode}`, { httpStatus: res.statusCode })
    }
    return body.data
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}
