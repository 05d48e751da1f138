// Internal API for processors, operators and checkers: read any payment and apply state
// transitions with a version check. Reached through nginx's internal listener (which passes the
// caller's own credential through and adds none) or on the node's admin port; never through the
// public nginx server. Every call names its service by its token (internal-auth.ts); a transition
// is recorded with that service as its actor, whatever the body says.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { InternalService } from '../lib/internal-credentials.ts'
import { maskCardNumbers } from '../lib/card-numbers.ts'
import type { Logger } from '../lib/log.ts'
import { paymentStatuses, type PaymentStatus, type RefundStatus } from '../lib/payment-codec.ts'
import { isValidMerchantId } from '../lib/payment-id.ts'
import { isValidCheckoutId } from './create-request.ts'
import { ProblemError, type FieldError } from './errors.ts'
import { isJsonContentType, parseJson, readBody, sendJson } from './http-io.ts'
import { recordedActor, requireAllowed, type InternalAuthenticator } from './internal-auth.ts'
import type { NodeLimits } from './limits.ts'
import type { NodeMetrics } from './metrics.ts'
import { isAcceptableNextActionUrl, nextActionUrlLengthMax } from './next-action.ts'
import type { PaymentService, RefundTransitionRequest, TransitionRequest, TransitionResult } from './payment-service.ts'
import { internalPaymentView, refundView } from './payment-view.ts'

export interface InternalRouteContext {
  service: PaymentService
  limits: NodeLimits
  metrics: NodeMetrics
  log: Logger
  internalAuth: InternalAuthenticator
}

const actorLengthMax = 64
const failureCodeLengthMax = 64
const failureMessageLengthMax = 500
const pspReferenceLengthMax = 128

/** A payment as the internal API's path names it: its merchant and its checkout id (issue #17 part 5). */
export interface InternalPaymentPath {
  merchantId: string
  checkoutId: string
}

/** The path's ids, checked: a malformed one is never looked up (nor logged). */
function paymentIdOf (path: InternalPaymentPath): InternalPaymentPath {
  if (!isValidMerchantId(path.merchantId)) throw new ProblemError('validation_failed', { detail: 'merchant ids are 1..64 characters of [A-Za-z0-9_-]' })
  if (!isValidCheckoutId(path.checkoutId)) throw new ProblemError('checkout_id_invalid')
  return path
}

export function getInternalPayment (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse, path: InternalPaymentPath): void {
  ctx.internalAuth.require(req, { kind: 'read' })
  const { merchantId, checkoutId } = paymentIdOf(path)
  sendJson(res, 200, internalPaymentView(ctx.service.get(merchantId, checkoutId)))
}

export async function applyTransition (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse, path: InternalPaymentPath): Promise<void> {
  // Who is asking comes first: nothing of the body is read for a caller without a credential.
  const caller = ctx.internalAuth.serviceOf(req)
  const id = paymentIdOf(path)
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const request = parseTransition(parseJson(await readBody(req, ctx.limits.bodyBytesMax)), singleTransitionFields, caller)
  const result = await transitionOne(ctx, id, request)
  sendJson(res, 200, { applied: result.applied, payment: internalPaymentView(result.payment) })
}

async function transitionOne (ctx: InternalRouteContext, { merchantId, checkoutId }: InternalPaymentPath, request: TransitionRequest): Promise<TransitionResult> {
  try {
    const result = await ctx.service.transition(merchantId, checkoutId, request, Date.now())
    ctx.metrics.transitions.inc({ to: request.to, outcome: result.applied ? 'applied' : 'noop' })
    // Debug: every payment makes two, and the change log and Postgres' payment_events already
    // hold each applied one (with its actor); refusals below stay at info.
    ctx.log.debug({ checkout_id: checkoutId, merchant_id: merchantId, to: request.to, actor: request.actor, applied: result.applied,
      version: result.payment.version }, 'transition')
    return result
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.transitions.inc({ to: request.to, outcome: 'rejected' })
      ctx.log.info({ checkout_id: checkoutId, merchant_id: merchantId, to: request.to, actor: request.actor, code: error.code }, 'transition refused')
    }
    throw error
  }
}

/**
 * `POST /internal/transitions` `{transitions: [{merchant_id, checkout_id, to, expected_version, actor, …}]}`:
 * many transitions of this node's payments in one request (processors batch them per node, so a
 * busy pipeline pays one HTTP round trip and one fsynced batch for many payments instead of one
 * each). Each item is applied exactly as `POST /internal/payments/{merchant_id}/{id}/transitions` would apply
 * it, concurrently, so they share the group commit; the answer holds one result per item, in
 * order: `{applied, payment}` or `{error: {status, code, detail, current_status?, current_version?}}`.
 * A malformed item refuses the whole request (400) before anything is applied.
 */
export async function applyTransitionBatch (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const caller = ctx.internalAuth.serviceOf(req)
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const body = parseJson(await readBody(req, ctx.limits.transitionBatchBodyBytesMax))
  // An item the service may not apply refuses the whole request (403), like a malformed one.
  const items = parseTransitionBatch(body, ctx.limits.transitionsPerBatchMax, caller)
  const settled = await Promise.allSettled(items.map(({ id, request }) => transitionOne(ctx, id, request)))
  const results = settled.map((outcome) => {
    if (outcome.status === 'fulfilled') return { applied: outcome.value.applied, payment: internalPaymentView(outcome.value.payment) }
    // Anything but an expected refusal is a bug: the request fails as a single one would.
    if (!(outcome.reason instanceof ProblemError)) throw outcome.reason
    const problem = outcome.reason
    return { error: { status: problem.status, code: problem.code, detail: problem.detail, ...problem.extra } }
  })
  sendJson(res, 200, { results })
}

function parseTransitionBatch (body: unknown, itemsMax: number, caller: InternalService): Array<{ id: InternalPaymentPath, request: TransitionRequest }> {
  if (typeof body !== 'object' || body === null || Array.isArray(body) ||
    Object.keys(body).some((key) => key !== 'transitions')) {
    throw new ProblemError('validation_failed', { detail: 'Body must be {"transitions": [...]}' })
  }
  const list = (body as { transitions?: unknown }).transitions
  if (!Array.isArray(list) || list.length === 0 || list.length > itemsMax) {
    throw new ProblemError('validation_failed', { detail: `transitions must be an array of 1..${itemsMax} items` })
  }
  return list.map((item: unknown, index) => {
    const merchantId = (item as { merchant_id?: unknown } | null)?.merchant_id
    if (typeof merchantId !== 'string' || !isValidMerchantId(merchantId)) {
      throw new ProblemError('validation_failed', { errors: [{ field: `transitions[${index}].merchant_id`, code: 'format', message: 'merchant_id must be a valid merchant id' }] })
    }
    const checkoutId = (item as { checkout_id?: unknown } | null)?.checkout_id
    if (typeof checkoutId !== 'string' || !isValidCheckoutId(checkoutId)) {
      throw new ProblemError('validation_failed', { errors: [{ field: `transitions[${index}].checkout_id`, code: 'format', message: 'checkout_id must be a valid checkout id' }] })
    }
    return { id: { merchantId, checkoutId }, request: parseTransition(item, batchTransitionFields, caller) }
  })
}

const singleTransitionFields = new Set(['to', 'expected_version', 'actor', 'failure_code', 'failure_message', 'psp_reference', 'publish', 'next_action_url', 'psp_provider'])
/** A PSP provider's name (issue #16): the processors' routing config names them so. */
const pspProviderPattern = /^[a-z][a-z0-9_-]{0,31}$/
const batchTransitionFields = new Set([...singleTransitionFields, 'merchant_id', 'checkout_id'])

/**
 * A transition as `caller` asks for it: validated (400), then checked against what the caller's
 * service may do (403), with the actor it will be recorded under.
 */
function parseTransition (body: unknown, allowed: ReadonlySet<string>, caller: InternalService): TransitionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProblemError('validation_failed', { detail: 'Body must be a JSON object' })
  }
  const input = body as Record<string, unknown>
  const errors: FieldError[] = []
  for (const key of Object.keys(input)) {
    if (!allowed.has(key)) errors.push({ field: key, code: 'unknown_field', message: `Unknown field ${key}` })
  }
  if (typeof input.to !== 'string' || !(paymentStatuses as readonly string[]).includes(input.to)) {
    errors.push({ field: 'to', code: 'format', message: `to must be one of ${paymentStatuses.join(', ')}` })
  }
  if (typeof input.expected_version !== 'number' || !Number.isSafeInteger(input.expected_version) || input.expected_version < 1) {
    errors.push({ field: 'expected_version', code: 'format', message: 'expected_version must be a positive integer' })
  }
  const text = (field: string, lengthMax: number, required: boolean): string => {
    const value = input[field]
    if (value === undefined && !required) return ''
    if (typeof value !== 'string' || value.length > lengthMax || (required && value.length === 0)) {
      errors.push({ field, code: 'format', message: `${field} must be a string of at most ${lengthMax} characters` })
      return ''
    }
    return value
  }
  // Free text from a PSP's answer is masked, not refused: refusing would leave the payment
  // stuck, and a card number must not be stored either way.
  // What the caller says about itself (e.g. `watchdog`): optional, recorded after its service.
  const actor = text('actor', actorLengthMax, false)
  const failureCode = maskCardNumbers(text('failure_code', failureCodeLengthMax, false))
  const failureMessage = maskCardNumbers(text('failure_message', failureMessageLengthMax, false))
  const pspReference = text('psp_reference', pspReferenceLengthMax, false)
  // A success is what a merchant is paid on: it must name the PSP's charge, which the processor
  // checked (amount, currency, reference) and the reconciler later finds in the settlement report.
  if (input.to === 'succeeded' && pspReference.trim() === '' && !errors.some((e) => e.field === 'psp_reference')) {
    errors.push({ field: 'psp_reference', code: 'required', message: 'a move to succeeded needs the psp_reference of the charge' })
  }
  // An authorization is captured (or voided) by its PSP charge: the move must name it.
  if (input.to === 'requires_capture' && pspReference.trim() === '' && !errors.some((e) => e.field === 'psp_reference')) {
    errors.push({ field: 'psp_reference', code: 'required', message: 'a move to requires_capture needs the psp_reference of the authorization' })
  }
  // Where the customer completes a charge the PSP holds for them: only with requires_action, an
  // absolute http(s) URL, never one holding a card number (it is shown to the merchant).
  const nextActionUrl = text('next_action_url', nextActionUrlLengthMax, false)
  if (nextActionUrl !== '') {
    if (input.to !== 'requires_action') {
      errors.push({ field: 'next_action_url', code: 'format', message: 'next_action_url goes only with a move to requires_action' })
    } else if (!isAcceptableNextActionUrl(nextActionUrl)) {
      errors.push({ field: 'next_action_url', code: 'format', message: 'next_action_url must be an absolute http(s) URL' })
    }
  }
  // Only a claim may stay off the change log: every other status is one Postgres must follow.
  if (input.publish !== undefined && typeof input.publish !== 'boolean') {
    errors.push({ field: 'publish', code: 'format', message: 'publish must be a boolean' })
  } else if (input.publish === false && input.to !== 'processing') {
    errors.push({ field: 'publish', code: 'format', message: 'publish may be false only for a move to processing' })
  }
  // The routed PSP (issue #16): only with the claim, `processing`.
  const pspProvider = input.psp_provider
  if (pspProvider !== undefined) {
    if (typeof pspProvider !== 'string' || !pspProviderPattern.test(pspProvider)) {
      errors.push({ field: 'psp_provider', code: 'format', message: 'psp_provider must be a provider name (a-z, 0-9, _ and -, at most 32)' })
    } else if (input.to !== 'processing') {
      errors.push({ field: 'psp_provider', code: 'format', message: 'psp_provider goes only with a move to processing' })
    }
  }
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  requireAllowed(caller, { kind: 'transition', to: input.to as PaymentStatus })
  return {
    to: input.to as PaymentStatus,
    expectedVersion: input.expected_version as number,
    actor: recordedActor(caller, actor),
    failureCode,
    failureMessage,
    pspReference,
    publish: input.publish !== false,
    ...(nextActionUrl !== '' ? { nextActionUrl } : {}),
    ...(typeof pspProvider === 'string' ? { pspProvider } : {}),
  }
}

/**
 * `POST /internal/payments/{merchant_id}/{id}/refund_canceled_charge` `{psp_reference, actor?}`: the processor
 * found a canceled payment's PSP charge taken anyway; the node refunds the whole charge (one such
 * refund per payment, a repeat answers it). `{created, refund, payment}`.
 */
export async function refundCanceledCharge (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse, path: InternalPaymentPath): Promise<void> {
  const caller = ctx.internalAuth.serviceOf(req)
  const { merchantId, checkoutId } = paymentIdOf(path)
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const body = parseJson(await readBody(req, ctx.limits.bodyBytesMax))
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ProblemError('validation_failed', { detail: 'Body must be a JSON object' })
  const input = body as Record<string, unknown>
  const errors: FieldError[] = []
  for (const key of Object.keys(input)) {
    if (key !== 'psp_reference' && key !== 'actor') errors.push({ field: key, code: 'unknown_field', message: `Unknown field ${key}` })
  }
  const pspReference = input.psp_reference
  if (typeof pspReference !== 'string' || pspReference === '' || pspReference.length > pspReferenceLengthMax) {
    errors.push({ field: 'psp_reference', code: 'format', message: `psp_reference must be a string of 1..${pspReferenceLengthMax} characters` })
  }
  const actor = input.actor
  if (actor !== undefined && (typeof actor !== 'string' || actor.length > actorLengthMax)) {
    errors.push({ field: 'actor', code: 'format', message: `actor must be a string of at most ${actorLengthMax} characters` })
  }
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  requireAllowed(caller, { kind: 'refund_canceled_charge' })
  const recorded = recordedActor(caller, typeof actor === 'string' ? actor : '')
  const result = await ctx.service.refundCanceledCharge(merchantId, checkoutId, pspReference as string, recorded, Date.now())
  ctx.log.warn({ checkout_id: checkoutId, merchant_id: merchantId, refund_id: result.refund.id, psp_reference: pspReference, created: result.kind === 'created', actor: recorded },
    'refunding the charge of a canceled payment')
  sendJson(res, 200, { created: result.kind === 'created', refund: refundView(result.payment, result.refund), payment: internalPaymentView(result.payment) })
}

const refundTransitionFields = new Set(['to', 'actor', 'failure_code', 'failure_message', 'psp_reference'])
const refundTargets: readonly RefundStatus[] = ['succeeded', 'failed']
const refundIdPattern = /^re_[A-Za-z0-9_-]{1,64}$/

/**
 * `POST /internal/payments/{merchant_id}/{id}/refunds/{refund_id}/transitions` `{to: "succeeded"|"failed",
 * psp_reference?, failure_code?, failure_message?, actor?}`: a refund's outcome, from the
 * processor only. No expected version: a refund is judged on its own forward-only status, so
 * refunds of one payment settle independently. `{applied, refund, payment}`.
 */
export async function applyRefundTransition (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse,
  path: InternalPaymentPath, refundId: string): Promise<void> {
  const caller = ctx.internalAuth.serviceOf(req)
  const { merchantId, checkoutId } = paymentIdOf(path)
  if (!refundIdPattern.test(refundId)) throw new ProblemError('refund_not_found')
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const request = parseRefundTransition(parseJson(await readBody(req, ctx.limits.bodyBytesMax)), caller)
  try {
    const result = await ctx.service.transitionRefund(merchantId, checkoutId, refundId, request, Date.now())
    ctx.metrics.refundTransitions.inc({ to: request.to, outcome: result.applied ? 'applied' : 'noop' })
    ctx.log.info({ checkout_id: checkoutId, refund_id: refundId, to: request.to, actor: request.actor, applied: result.applied,
      version: result.payment.version }, 'refund transition')
    sendJson(res, 200, { applied: result.applied, refund: refundView(result.payment, result.refund), payment: internalPaymentView(result.payment) })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.refundTransitions.inc({ to: request.to, outcome: 'rejected' })
      ctx.log.info({ checkout_id: checkoutId, refund_id: refundId, to: request.to, code: error.code }, 'refund transition refused')
    }
    throw error
  }
}

function parseRefundTransition (body: unknown, caller: InternalService): RefundTransitionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProblemError('validation_failed', { detail: 'Body must be a JSON object' })
  }
  const input = body as Record<string, unknown>
  const errors: FieldError[] = []
  for (const key of Object.keys(input)) {
    if (!refundTransitionFields.has(key)) errors.push({ field: key, code: 'unknown_field', message: `Unknown field ${key}` })
  }
  if (typeof input.to !== 'string' || !(refundTargets as readonly string[]).includes(input.to)) {
    errors.push({ field: 'to', code: 'format', message: `to must be one of ${refundTargets.join(', ')}` })
  }
  const text = (field: string, lengthMax: number): string => {
    const value = input[field]
    if (value === undefined) return ''
    if (typeof value !== 'string' || value.length > lengthMax) {
      errors.push({ field, code: 'format', message: `${field} must be a string of at most ${lengthMax} characters` })
      return ''
    }
    return value
  }
  const actor = text('actor', actorLengthMax)
  const failureCode = maskCardNumbers(text('failure_code', failureCodeLengthMax))
  const failureMessage = maskCardNumbers(text('failure_message', failureMessageLengthMax))
  const pspReference = text('psp_reference', pspReferenceLengthMax)
  // Money given back must name the PSP's refund, which the reconciler can then find.
  if (input.to === 'succeeded' && pspReference.trim() === '' && !errors.some((e) => e.field === 'psp_reference')) {
    errors.push({ field: 'psp_reference', code: 'required', message: 'a refund moved to succeeded needs the psp_reference of the PSP refund' })
  }
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  requireAllowed(caller, { kind: 'refund_transition' })
  return { to: input.to as RefundStatus, actor: recordedActor(caller, actor), failureCode, failureMessage, pspReference }
}
