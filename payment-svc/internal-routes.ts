// Internal API for processors, webhooks' follow-ups and the watchdog: read any payment and apply
// state transitions with a version check. Reached through nginx's internal listener (which adds
// the token) or on the node's admin port; never through the public server.

import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { maskCardNumbers } from '../lib/card-numbers.ts'
import type { Logger } from '../lib/log.ts'
import { paymentStatuses, type PaymentStatus } from '../lib/payment-codec.ts'
import { isValidCheckoutId } from './create-request.ts'
import { ProblemError, type FieldError } from './errors.ts'
import { isJsonContentType, parseJson, readBody, sendJson } from './http-io.ts'
import type { NodeLimits } from './limits.ts'
import type { NodeMetrics } from './metrics.ts'
import type { PaymentService, TransitionRequest, TransitionResult } from './payment-service.ts'
import { internalPaymentView } from './payment-view.ts'

export interface InternalRouteContext {
  service: PaymentService
  limits: NodeLimits
  metrics: NodeMetrics
  log: Logger
  internalTokenDigest: Buffer
}

const tokenHeader = 'x-ringpay-internal-token'
const actorLengthMax = 64
const failureCodeLengthMax = 64
const failureMessageLengthMax = 500
const pspReferenceLengthMax = 128

export function digestToken (token: string): Buffer {
  return hash('sha256', token, 'buffer')
}

export function requireInternalToken (ctx: InternalRouteContext, req: IncomingMessage): void {
  const header = req.headers[tokenHeader]
  if (typeof header !== 'string' || header.length === 0 ||
    !timingSafeEqual(digestToken(header), ctx.internalTokenDigest)) {
    throw new ProblemError('unauthorized', { detail: 'internal token missing or wrong' })
  }
}

function checkoutIdOf (pathId: string): string {
  if (!isValidCheckoutId(pathId)) throw new ProblemError('checkout_id_invalid')
  return pathId
}

export function getInternalPayment (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string): void {
  requireInternalToken(ctx, req)
  sendJson(res, 200, internalPaymentView(ctx.service.getInternal(checkoutIdOf(pathId))))
}

export async function applyTransition (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse, pathId: string): Promise<void> {
  requireInternalToken(ctx, req)
  const checkoutId = checkoutIdOf(pathId)
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const request = parseTransition(parseJson(await readBody(req, ctx.limits.bodyBytesMax)), singleTransitionFields)
  const result = await transitionOne(ctx, checkoutId, request)
  sendJson(res, 200, { applied: result.applied, payment: internalPaymentView(result.payment) })
}

async function transitionOne (ctx: InternalRouteContext, checkoutId: string, request: TransitionRequest): Promise<TransitionResult> {
  try {
    const result = await ctx.service.transition(checkoutId, request, Date.now())
    ctx.metrics.transitions.inc({ to: request.to, outcome: result.applied ? 'applied' : 'noop' })
    // Debug: every payment makes two, and the change log and Postgres' payment_events already
    // hold each applied one (with its actor); refusals below stay at info.
    ctx.log.debug({ checkout_id: checkoutId, to: request.to, actor: request.actor, applied: result.applied,
      version: result.payment.version }, 'transition')
    return result
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.transitions.inc({ to: request.to, outcome: 'rejected' })
      ctx.log.info({ checkout_id: checkoutId, to: request.to, actor: request.actor, code: error.code }, 'transition refused')
    }
    throw error
  }
}

/**
 * `POST /internal/transitions` `{transitions: [{checkout_id, to, expected_version, actor, …}]}`:
 * many transitions of this node's payments in one request (processors batch them per node, so a
 * busy pipeline pays one HTTP round trip and one fsynced batch for many payments instead of one
 * each). Each item is applied exactly as `POST /internal/payments/{id}/transitions` would apply
 * it, concurrently, so they share the group commit; the answer holds one result per item, in
 * order: `{applied, payment}` or `{error: {status, code, detail, current_status?, current_version?}}`.
 * A malformed item refuses the whole request (400) before anything is applied.
 */
export async function applyTransitionBatch (ctx: InternalRouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  requireInternalToken(ctx, req)
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const body = parseJson(await readBody(req, ctx.limits.transitionBatchBodyBytesMax))
  const items = parseTransitionBatch(body, ctx.limits.transitionsPerBatchMax)
  const settled = await Promise.allSettled(items.map(({ checkoutId, request }) => transitionOne(ctx, checkoutId, request)))
  const results = settled.map((outcome) => {
    if (outcome.status === 'fulfilled') return { applied: outcome.value.applied, payment: internalPaymentView(outcome.value.payment) }
    // Anything but an expected refusal is a bug: the request fails as a single one would.
    if (!(outcome.reason instanceof ProblemError)) throw outcome.reason
    const problem = outcome.reason
    return { error: { status: problem.status, code: problem.code, detail: problem.detail, ...problem.extra } }
  })
  sendJson(res, 200, { results })
}

function parseTransitionBatch (body: unknown, itemsMax: number): Array<{ checkoutId: string, request: TransitionRequest }> {
  if (typeof body !== 'object' || body === null || Array.isArray(body) ||
    Object.keys(body).some((key) => key !== 'transitions')) {
    throw new ProblemError('validation_failed', { detail: 'Body must be {"transitions": [...]}' })
  }
  const list = (body as { transitions?: unknown }).transitions
  if (!Array.isArray(list) || list.length === 0 || list.length > itemsMax) {
    throw new ProblemError('validation_failed', { detail: `transitions must be an array of 1..${itemsMax} items` })
  }
  return list.map((item: unknown, index) => {
    const id = (item as { checkout_id?: unknown } | null)?.checkout_id
    if (typeof id !== 'string' || !isValidCheckoutId(id)) {
      throw new ProblemError('validation_failed', { errors: [{ field: `transitions[${index}].checkout_id`, code: 'format', message: 'checkout_id must be a valid checkout id' }] })
    }
    return { checkoutId: id, request: parseTransition(item, batchTransitionFields) }
  })
}

const singleTransitionFields = new Set(['to', 'expected_version', 'actor', 'failure_code', 'failure_message', 'psp_reference', 'publish'])
const batchTransitionFields = new Set([...singleTransitionFields, 'checkout_id'])

function parseTransition (body: unknown, allowed: ReadonlySet<string>): TransitionRequest {
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
  const actor = text('actor', actorLengthMax, true)
  const failureCode = maskCardNumbers(text('failure_code', failureCodeLengthMax, false))
  const failureMessage = maskCardNumbers(text('failure_message', failureMessageLengthMax, false))
  const pspReference = text('psp_reference', pspReferenceLengthMax, false)
  // Only a claim may stay off the change log: every other status is one Postgres must follow.
  if (input.publish !== undefined && typeof input.publish !== 'boolean') {
    errors.push({ field: 'publish', code: 'format', message: 'publish must be a boolean' })
  } else if (input.publish === false && input.to !== 'processing') {
    errors.push({ field: 'publish', code: 'format', message: 'publish may be false only for a move to processing' })
  }
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  return {
    to: input.to as PaymentStatus,
    expectedVersion: input.expected_version as number,
    actor,
    failureCode,
    failureMessage,
    pspReference,
    publish: input.publish !== false,
  }
}
