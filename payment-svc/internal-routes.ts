// Internal API for processors, webhooks' follow-ups and the watchdog: read any payment and apply
// state transitions with a version check. Reached through nginx's internal listener (which adds
// the token) or on the node's admin port; never through the public server.

import { hash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../lib/log.ts'
import { paymentStatuses, type PaymentStatus } from '../lib/payment-codec.ts'
import { isValidCheckoutId } from './create-request.ts'
import { ProblemError, type FieldError } from './errors.ts'
import { isJsonContentType, parseJson, readBody, sendJson } from './http-io.ts'
import type { NodeLimits } from './limits.ts'
import type { NodeMetrics } from './metrics.ts'
import type { PaymentService, TransitionRequest } from './payment-service.ts'
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
  const request = parseTransition(parseJson(await readBody(req, ctx.limits.bodyBytesMax)))
  try {
    const result = await ctx.service.transition(checkoutId, request, Date.now())
    ctx.metrics.transitions.inc({ to: request.to, outcome: result.applied ? 'applied' : 'noop' })
    ctx.log.info({ checkout_id: checkoutId, to: request.to, actor: request.actor, applied: result.applied,
      version: result.payment.version }, 'transition')
    sendJson(res, 200, { applied: result.applied, payment: internalPaymentView(result.payment) })
  } catch (error) {
    if (error instanceof ProblemError) {
      ctx.metrics.transitions.inc({ to: request.to, outcome: 'rejected' })
      ctx.log.info({ checkout_id: checkoutId, to: request.to, actor: request.actor, code: error.code }, 'transition refused')
    }
    throw error
  }
}

function parseTransition (body: unknown): TransitionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProblemError('validation_failed', { detail: 'Body must be a JSON object' })
  }
  const input = body as Record<string, unknown>
  const errors: FieldError[] = []
  const allowed = new Set(['to', 'expected_version', 'actor', 'failure_code', 'failure_message', 'psp_reference'])
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
  const actor = text('actor', actorLengthMax, true)
  const failureCode = text('failure_code', failureCodeLengthMax, false)
  const failureMessage = text('failure_message', failureMessageLengthMax, false)
  const pspReference = text('psp_reference', pspReferenceLengthMax, false)
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  return {
    to: input.to as PaymentStatus,
    expectedVersion: input.expected_version as number,
    actor,
    failureCode,
    failureMessage,
    pspReference,
  }
}
