// The public API, reached through nginx: create a payment, read it, long-poll it, cancel it.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../lib/log.ts'
import { tracer } from '../lib/tracing.ts'
import type { ApiKeyRegistry, ApiKeyScope } from './api-keys.ts'
import { jsonHoldsCardNumber, refuseCardNumberInId } from './card-number-guard.ts'
import { isValidCheckoutId, parseCreatePayment } from './create-request.ts'
import { ProblemError } from './errors.ts'
import type { FailedKeyLimiter } from './failed-key-limiter.ts'
import { isJsonContentType, parseJson, readBody, sendJson } from './http-io.ts'
import type { NodeLimits } from './limits.ts'
import { authenticateMerchant } from './merchant-auth.ts'
import type { NodeMetrics } from './metrics.ts'
import type { PaymentService } from './payment-service.ts'
import { paymentView, refundView } from './payment-view.ts'
import { idempotencyKeyFrom, parseCaptureRequest, parseRefundRequest } from './refund-request.ts'
import { traceAccept } from './traces.ts'

export interface PublicRouteContext {
  service: PaymentService
  apiKeys: ApiKeyRegistry
  limits: NodeLimits
  metrics: NodeMetrics
  log: Logger
  failedKeys: FailedKeyLimiter
  /** Peers whose X-Real-IP is believed (config.ts). */
  trustedProxies: ReadonlySet<string>
}

const checkoutHeader = 'x-payment-checkout-id'

/**
 * The checkout id of the request, or a problem. A PAN-shaped id is refused first (so the client
 * learns why, whatever else is wrong with it) and never echoed.
 */
function checkoutIdFrom (req: IncomingMessage, pathId: string | undefined): string {
  const header = req.headers[checkoutHeader]
  const headerId = Array.isArray(header) ? undefined : header
  if (Array.isArray(header)) throw new ProblemError('checkout_id_invalid', { detail: 'send X-PAYMENT-CHECKOUT-ID once' })
  refuseCardNumberInId(pathId)
  refuseCardNumberInId(headerId)
  const id = pathId ?? headerId
  if (id === undefined || id === '') throw new ProblemError('checkout_id_missing')
  if (!isValidCheckoutId(id)) {
    throw new ProblemError('checkout_id_invalid', { detail: 'checkout ids are 1..64 characters of [A-Za-z0-9_-]' })
  }
  if (pathId !== undefined && headerId !== undefined && headerId !== pathId) {
    // nginx routed by the header; a different id in the path may live on another node.
    throw new ProblemError('checkout_id_invalid', { detail: 'X-PAYMENT-CHECKOUT-ID and the path name different payments' })
  }
  return id
}

function merchantFrom (ctx: PublicRouteContext, req: IncomingMessage, need: ApiKeyScope): string {
  return authenticateMerchant(ctx, req, need, () => ctx.metrics.authFailures.inc())
}

export async function createPayment (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = tracer === undefined ? 0 : performance.now()
  let checkoutId: string | undefined
  let merchantId: string | undefined
  try {
    checkoutId = checkoutIdFrom(req, undefined)
    merchantId = merchantFrom(ctx, req, 'full')
    if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
    const text = await readBody(req, ctx.limits.bodyBytesMax)
    const body = parseJson(text)
    // The parsed values, so JSON escapes (`\u0034…`) are read as what they encode; before
    // validation and before any log line can quote them: a raw PAN never goes further.
    if (jsonHoldsCardNumber(body)) throw new ProblemError('card_number_detected')
    const request = parseCreatePayment(body, ctx.limits)
    const result = await ctx.service.create(merchantId, checkoutId, request, Date.now())
    if (result.kind === 'created') {
      ctx.metrics.payments.inc({ outcome: 'accepted', code: '' })
      ctx.log.debug({ checkout_id: checkoutId, merchant_id: merchantId }, 'payment accepted')
      sendJson(res, 202, paymentView(result.payment))
    } else {
      ctx.metrics.payments.inc({ outcome: 'replayed', code: '' })
      ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId }, 'idempotent replay')
      sendJson(res, 200, paymentView(result.payment), { 'idempotent-replayed': 'true' })
    }
    if (tracer !== undefined) traceAccept(tracer, { nodeId: ctx.service.nodeId, merchantId, checkoutId, startedAt, outcome: result.kind, httpStatus: res.statusCode })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.payments.inc({ outcome: 'rejected', code: error.code })
      const loggedId = error.code === 'card_number_detected' || error.code === 'checkout_id_invalid' ? undefined : checkoutId
      ctx.log.info({ checkout_id: loggedId, code: error.code, status: error.status }, 'payment rejected')
      // Only an id that was valid, of an authenticated merchant, names a trace (never a card-shaped one).
      if (tracer !== undefined && merchantId !== undefined && loggedId !== undefined) {
        traceAccept(tracer, { nodeId: ctx.service.nodeId, merchantId, checkoutId: loggedId, startedAt, outcome: 'rejected', httpStatus: error.status, errorCode: error.code })
      }
    }
    throw error
  }
}

export function getPayment (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string,
  query: URLSearchParams | undefined): Promise<void> | void {
  const checkoutId = checkoutIdFrom(req, pathId)
  const merchantId = merchantFrom(ctx, req, 'read')
  const waitMs = parseWaitMs(query, ctx.limits.longPollWaitMsMax)
  if (waitMs === 0) {
    sendJson(res, 200, paymentView(ctx.service.get(merchantId, checkoutId)))
    return
  }
  const afterVersion = parseAfterVersion(query)
  return ctx.service.waitForChange(merchantId, checkoutId, afterVersion, waitMs, (cancel) => res.once('close', cancel)).then((payment) => {
    if (!res.destroyed) sendJson(res, 200, paymentView(payment))
  })
}

/**
 * POST /payments/{id}/cancel: 200 with the canceled payment (also when it already was canceled:
 * a retried cancel is safe), 409 payment_not_cancelable once the processor has claimed it (or it
 * is final), 404 for
 * another merchant's. No request body is read (Stripe's optional cancellation_reason is not
 * supported); whatever is sent is discarded by Node once the answer is written.
 */
export async function cancelPayment (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string): Promise<void> {
  const checkoutId = checkoutIdFrom(req, pathId)
  const merchantId = merchantFrom(ctx, req, 'full')
  try {
    const result = await ctx.service.cancel(merchantId, checkoutId, Date.now())
    ctx.metrics.cancels.inc({ outcome: result.applied ? 'canceled' : 'replayed', code: '' })
    ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, applied: result.applied, version: result.payment.version }, 'payment canceled')
    sendJson(res, 200, paymentView(result.payment), result.applied ? undefined : { 'idempotent-replayed': 'true' })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.cancels.inc({ outcome: 'refused', code: error.code })
      ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, code: error.code, ...error.extra }, 'cancel refused')
    }
    throw error
  }
}

/**
 * POST /payments/{id}/capture `{amount?}` (issue #14, manual capture): 202 with the payment once
 * the capture request is fsynced with its change event (`status` stays `requires_capture`,
 * `amount_to_capture` set; it becomes `succeeded` with `amount_captured` once the PSP captured).
 * A repeat (no amount, or the same one) while that capture is pending or after it succeeded →
 * 200 with the payment as it is now and `Idempotent-Replayed: true`, so retries are harmless
 * without an Idempotency-Key (one capture per payment). 409 payment_not_capturable for any other
 * payment (automatic, not yet authorized, canceled, or another amount already asked for), 409
 * capture_amount_exceeds_authorized past the authorized amount. An empty body captures the whole.
 */
export async function capturePayment (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string): Promise<void> {
  const checkoutId = checkoutIdFrom(req, pathId)
  const merchantId = merchantFrom(ctx, req, 'full')
  try {
    const text = await readBody(req, ctx.limits.bodyBytesMax)
    let amount: number | undefined
    if (text !== '') {
      if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
      const body = parseJson(text)
      if (jsonHoldsCardNumber(body)) throw new ProblemError('card_number_detected')
      amount = parseCaptureRequest(body, ctx.limits).amount
    }
    const result = await ctx.service.capture(merchantId, checkoutId, amount, Date.now())
    ctx.metrics.captures.inc({ outcome: result.kind, code: '' })
    ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, amount_to_capture: result.payment.amountToCapture,
      replayed: result.kind === 'replayed', version: result.payment.version }, 'capture requested')
    if (result.kind === 'requested') sendJson(res, 202, paymentView(result.payment))
    else sendJson(res, 200, paymentView(result.payment), { 'idempotent-replayed': 'true' })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.captures.inc({ outcome: 'refused', code: error.code })
      ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, code: error.code, ...error.extra }, 'capture refused')
    }
    throw error
  }
}

/**
 * POST /payments/{id}/refunds (issue #14): 202 with the new refund (`pending`) once it is fsynced
 * with its change event; the same Idempotency-Key and body → 200 with the stored refund as it is
 * now and `Idempotent-Replayed: true`; the same key with another body → 409
 * idempotency_key_reuse. 409 payment_not_refundable unless the payment succeeded; 409
 * refund_amount_exceeds_available past what is left (pending and succeeded refunds count).
 */
export async function createRefund (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string): Promise<void> {
  const checkoutId = checkoutIdFrom(req, pathId)
  const merchantId = merchantFrom(ctx, req, 'full')
  try {
    const idempotencyKey = idempotencyKeyFrom(req.headers['idempotency-key'], ctx.limits)
    // Stored and logged: a card number in it is refused like one in a checkout id.
    refuseCardNumberInId(idempotencyKey)
    if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
    const body = parseJson(await readBody(req, ctx.limits.bodyBytesMax))
    if (jsonHoldsCardNumber(body)) throw new ProblemError('card_number_detected')
    const request = parseRefundRequest(body, ctx.limits)
    const result = await ctx.service.createRefund(merchantId, checkoutId, idempotencyKey, request, Date.now())
    ctx.metrics.refunds.inc({ outcome: result.kind === 'created' ? 'accepted' : 'replayed', code: '' })
    ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, refund_id: result.refund.id, amount: result.refund.amount,
      replayed: result.kind === 'replayed', version: result.payment.version }, 'refund requested')
    if (result.kind === 'created') sendJson(res, 202, refundView(result.payment, result.refund))
    else sendJson(res, 200, refundView(result.payment, result.refund), { 'idempotent-replayed': 'true' })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.refunds.inc({ outcome: 'refused', code: error.code })
      ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, code: error.code, ...error.extra }, 'refund refused')
    }
    throw error
  }
}

/** GET /payments/{id}/refunds/{refund_id}: one refund of the merchant's payment, or 404. */
export function getRefund (ctx: PublicRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string, refundId: string): void {
  const checkoutId = checkoutIdFrom(req, pathId)
  const merchantId = merchantFrom(ctx, req, 'read')
  const { payment, refund } = ctx.service.getRefund(merchantId, checkoutId, refundId)
  sendJson(res, 200, refundView(payment, refund))
}

function parseWaitMs (query: URLSearchParams | undefined, waitMsMax: number): number {
  const raw = query?.get('wait_ms')
  if (raw === undefined || raw === null) return 0
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > waitMsMax) {
    throw new ProblemError('invalid_query', { detail: `wait_ms must be an integer within 0..${waitMsMax}` })
  }
  return Number(raw)
}

function parseAfterVersion (query: URLSearchParams | undefined): number | undefined {
  const raw = query?.get('after_version')
  if (raw === undefined || raw === null) return undefined
  if (!/^\d{1,15}$/.test(raw)) throw new ProblemError('invalid_query', { detail: 'after_version must be a non-negative integer' })
  return Number(raw)
}
