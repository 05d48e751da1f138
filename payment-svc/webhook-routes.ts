// PSP webhooks: `POST /webhooks/psp/{provider}/{checkout_id}` through the public nginx, routed by
// the checkout id in the path to the owning node. The payment is the merchant's checkout id (issue
// #17 part 5): the merchant comes from the signed body (the charge or refund object's
// `merchant_id`, which the processor gave the PSP with the charge), never from anything unsigned. Verified (HMAC, constant time, 300 s tolerance)
// before anything is parsed; deduplicated by PSP event id; applied through the state machine.
// A card number in the path or the body is refused (`card_number_detected`): the body is stored
// as received, so it is checked both parsed (escapes decoded) and as raw text (number literals).
// Answered fast: the work is at most one group-committed write (none for a mere confirmation).

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../lib/log.ts'
import { signatureHeader, verifyWebhookSignature } from '../lib/webhook-signature.ts'
import { containsCardNumber, jsonHoldsCardNumber, refuseCardNumberInId } from './card-number-guard.ts'
import { isValidCheckoutId } from './create-request.ts'
import { tracer } from '../lib/tracing.ts'
import { ProblemError } from './errors.ts'
import { traceWebhook } from './traces.ts'
import { isJsonContentType, parseJson, readBody, sendJson } from './http-io.ts'
import type { NodeLimits } from './limits.ts'
import type { PaymentService } from './payment-service.ts'
import { parseNimbusNotifications } from './webhooks/nimbus.ts'
import { parseSandboxWebhook, type ParsedWebhook } from './webhooks/sandbox.ts'

export interface WebhookRouteContext {
  service: PaymentService
  limits: NodeLimits
  log: Logger
  webhookSecrets: ReadonlyMap<string, string>
}

export const webhookToleranceS = 300

/**
 * One entry per PSP (issue #16). `request`: the whole request is signed (the sandbox's
 * Ringpay-Signature over the raw body, checked before parsing); `items`: each item of a batch is
 * signed on its own (Nimbus), checked by the parser before any item is applied.
 */
type ProviderWebhooks =
  | { signed: 'request', parse: (body: unknown) => ParsedWebhook }
  | { signed: 'items', parse: (secret: string, body: unknown) => Array<ParsedWebhook & { payloadJson: string }> }

const providers: Readonly<Record<string, ProviderWebhooks>> = {
  sandbox: { signed: 'request', parse: parseSandboxWebhook },
  nimbus: { signed: 'items', parse: parseNimbusNotifications },
}

export async function receiveWebhook (ctx: WebhookRouteContext, req: IncomingMessage, res: ServerResponse,
  provider: string, checkoutId: string): Promise<void> {
  const secret = ctx.webhookSecrets.get(provider)
  const webhooks = Object.hasOwn(providers, provider) ? providers[provider] : undefined
  // Before any log line can quote the id.
  refuseCardNumberInId(checkoutId)
  if (secret === undefined || webhooks === undefined) throw new ProblemError('unknown_provider')
  if (!isValidCheckoutId(checkoutId)) throw new ProblemError('checkout_id_invalid')
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const text = await readBody(req, ctx.limits.bodyBytesMax)
  if (webhooks.signed === 'request') {
    const header = req.headers[signatureHeader]
    const check = verifyWebhookSignature(secret, typeof header === 'string' ? header : undefined, text,
      Math.floor(Date.now() / 1000), webhookToleranceS)
    if (!check.ok) {
      ctx.log.warn({ checkout_id: checkoutId, provider, reason: check.reason }, 'webhook signature refused')
      throw new ProblemError('webhook_signature_invalid', { detail: check.reason })
    }
  }
  const body = parseJson(text)
  if (jsonHoldsCardNumber(body) || containsCardNumber(text)) {
    ctx.log.warn({ checkout_id: checkoutId, provider, code: 'card_number_detected' }, 'webhook refused: it holds a card number')
    throw new ProblemError('card_number_detected')
  }
  if (webhooks.signed === 'items') {
    let events: Array<ParsedWebhook & { payloadJson: string }>
    try {
      events = webhooks.parse(secret, body)
    } catch (error) {
      if (error instanceof ProblemError && error.code === 'webhook_signature_invalid') {
        ctx.log.warn({ checkout_id: checkoutId, provider, reason: 'item_signature_mismatch' }, 'webhook signature refused')
      }
      throw error
    }
    if (events.some((event) => event.reference !== checkoutId)) {
      throw new ProblemError('validation_failed', { detail: 'an item is about another checkout id than the path' })
    }
    // In the batch's order (an authorisation before its refund); each deduplicated on its own.
    const results = []
    for (const event of events) {
      const result = await applyWebhook(ctx, provider, checkoutId, event, event.payloadJson)
      results.push(result.duplicate ? { duplicate: true } : { duplicate: false, applied: result.applied, note: result.note || undefined })
    }
    sendJson(res, 200, { received: true, items: results })
    return
  }
  const event = webhooks.parse(body)
  if (event.reference !== checkoutId) {
    throw new ProblemError('validation_failed', { detail: 'the event is about another checkout id than the path' })
  }
  const result = await applyWebhook(ctx, provider, checkoutId, event, text)
  if (result.duplicate) {
    sendJson(res, 200, { received: true, duplicate: true })
    return
  }
  sendJson(res, 200, { received: true, duplicate: false, applied: result.applied, note: result.note || undefined })
}

/**
 * Applies one verified event through the payment service, and logs what it came to. The payment
 * is the event's merchant's (from the signed body, #17 part 5) under the path's checkout id.
 */
async function applyWebhook (ctx: WebhookRouteContext, provider: string, checkoutId: string, event: ParsedWebhook,
  payloadJson: string): Promise<{ duplicate: true } | { duplicate: false, applied: boolean, note: string }> {
  const startedAt = tracer === undefined ? 0 : performance.now()
  const merchantId = event.merchantId
  const result = await ctx.service.receiveWebhook(merchantId, checkoutId, {
    provider,
    pspEventId: event.pspEventId,
    type: event.type,
    payloadJson,
    target: event.target,
    pspReference: event.pspReference,
    amount: event.amount,
    currency: event.currency,
    failureCode: event.failureCode,
    failureMessage: event.failureMessage,
    ...(event.refund !== undefined ? { refund: event.refund } : {}),
    ...(event.nextActionUrl !== undefined ? { nextActionUrl: event.nextActionUrl } : {}),
    ...(event.amountCaptured !== undefined ? { amountCaptured: event.amountCaptured } : {}),
  }, Date.now())
  if (tracer !== undefined) {
    traceWebhook(tracer, { nodeId: ctx.service.nodeId, merchantId, checkoutId, provider, type: event.type, startedAt,
      outcome: result.duplicate ? 'duplicate' : result.applied ? 'applied' : result.note || 'not_applied' })
  }
  if (result.duplicate) {
    ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, provider, psp_event_id: event.pspEventId }, 'duplicate webhook ignored')
    return { duplicate: true }
  }
  // One webhook per payment applies its outcome or confirms it: debug (the change event, and
  // Postgres' webhooks and payment_events, keep every one that changed something). What
  // disagrees with the payment (a note other than already_applied) stays at info.
  const level = result.applied || result.note === 'already_applied' ? 'debug' : 'info'
  ctx.log[level]({ checkout_id: checkoutId, merchant_id: merchantId, provider, psp_event_id: event.pspEventId, type: event.type,
    applied: result.applied, note: result.note, status: result.payment.status }, 'webhook received')
  return { duplicate: false, applied: result.applied, note: result.note }
}
