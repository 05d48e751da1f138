// The HTTP side of talking to Nimbus (issue #16): one undici pool, explicit timeouts per phase,
// `X-API-Key` authentication, the idempotency key the checkout id (a refund's derived from its id).
// Stateless apart from the connection pool; the wire format is nimbus.ts'.

import type { Pool } from 'undici'
import type { CancelCall, CaptureCall, ChargeCall, PspClientOptions, RefundCall } from './psp-client.ts'
import { pspPool, requestPsp, type PspAnswer } from './psp-client.ts'
import type { PspProvider } from './provider.ts'
import {
  cancelOutcomeOfNimbusResponse, nimbusProvider, outcomeOfNimbusPayment, outcomeOfNimbusPaymentResponse, outcomeOfNimbusRefund,
  refundOutcomeOfNimbusResponse, toNimbusPaymentBody, toNimbusRefundBody, type NimbusPayment, type NimbusRefund,
} from './nimbus.ts'
import { chargeIdempotencyKey, PspError, refundIdempotencyKey, type ChargeOutcome, type ChargeRequest, type RefundOutcome, type RefundRequest } from './types.ts'

export interface NimbusClientOptions extends Omit<PspClientOptions, 'secretKey'> {
  apiKey: string
}

export class NimbusClient implements PspProvider {
  readonly name = nimbusProvider
  readonly manualCapture = false
  readonly #pool: Pool
  readonly #options: NimbusClientOptions

  constructor (options: NimbusClientOptions) {
    this.#options = options
    this.#pool = pspPool(options)
  }

  chargeBody = (request: ChargeRequest): unknown => toNimbusPaymentBody(request)
  refundBody = toNimbusRefundBody

  async charge (request: ChargeRequest, signal?: AbortSignal): Promise<ChargeCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#send('POST', '/v1/payments', { 'idempotency-key': chargeIdempotencyKey(request.merchantId, request.checkoutId) },
      JSON.stringify(this.chargeBody(request)), signal)
    const outcome = outcomeOfNimbusPaymentResponse(httpStatus, body, retryAfter, request)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  async cancelCharge (pspReference: string): Promise<CancelCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#send('POST', `/v1/payments/${encodeURIComponent(pspReference)}/cancels`, {}, '{}')
    const outcome = cancelOutcomeOfNimbusResponse(httpStatus, body, retryAfter, pspReference)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  async capture (): Promise<CaptureCall> {
    // Routing never sends a manual-capture payment here (manualCapture false): reaching this is a bug.
    throw new PspError('psp_rejected', 'nimbus offers no manual capture')
  }

  async refund (request: RefundRequest): Promise<RefundCall> {
    const startedAt = performance.now()
    const { httpStatus, body, retryAfter } = await this.#send('POST', `/v1/payments/${encodeURIComponent(request.chargeReference)}/refunds`,
      { 'idempotency-key': refundIdempotencyKey(request.refundId) }, JSON.stringify(toNimbusRefundBody(request)))
    const outcome = refundOutcomeOfNimbusResponse(httpStatus, body, retryAfter, request)
    return { outcome, httpStatus, responseBody: body, latencyMs: Math.round(performance.now() - startedAt) }
  }

  async findCharge (request: ChargeRequest): Promise<ChargeOutcome | undefined> {
    const { httpStatus, body, retryAfter } = await this.#send('GET', `/v1/payments?merchantReference=${encodeURIComponent(request.checkoutId)}&merchantAccount=${encodeURIComponent(request.merchantId)}`, {})
    if (httpStatus !== 200) throwNimbusLookup(httpStatus, body, retryAfter)
    const payments = (body as { payments?: NimbusPayment[] } | undefined)?.payments
    if (!Array.isArray(payments)) throw new PspError('psp_bad_response', 'payments lookup without payments', { httpStatus })
    return payments[0] === undefined ? undefined : outcomeOfNimbusPayment(payments[0], request)
  }

  async findRefund (request: RefundRequest): Promise<RefundOutcome | undefined> {
    const { httpStatus, body, retryAfter } = await this.#send('GET', `/v1/refunds?idempotencyKey=${encodeURIComponent(refundIdempotencyKey(request.refundId))}`, {})
    if (httpStatus !== 200) throwNimbusLookup(httpStatus, body, retryAfter)
    const refunds = (body as { refunds?: NimbusRefund[] } | undefined)?.refunds
    if (!Array.isArray(refunds)) throw new PspError('psp_bad_response', 'refunds lookup without refunds', { httpStatus })
    return refunds[0] === undefined ? undefined : outcomeOfNimbusRefund(refunds[0], request)
  }

  async #send (method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string, signal?: AbortSignal): Promise<PspAnswer> {
    return requestPsp(this.#pool, method, path, { ...headers, 'x-api-key': this.#options.apiKey }, body, signal)
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}

function throwNimbusLookup (httpStatus: number, _body: unknown, _retryAfter: string | undefined): never {
  if (httpStatus >= 500) throw new PspError('psp_unavailable', `lookup answered ${httpStatus}`, { httpStatus })
  throw new PspError('psp_bad_response', `lookup answered ${httpStatus}`, { httpStatus })
}
