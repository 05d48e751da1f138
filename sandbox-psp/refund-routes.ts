// The PSP's refund API (Stripe's shape):
//   POST /v1/refunds                              create (Idempotency-Key required), {charge, amount, reference}
//   GET  /v1/refunds?idempotency_key=<key>        {object: "list", data: [refund]} (0 or 1 entries)
//   GET  /v1/refunds/<id>                         one refund
//   GET  /admin/refunds?idempotency_key=<key>     every refund ever created for the key (must be ≤ 1)

import type { IncomingMessage, ServerResponse } from 'node:http'
import { readIdempotencyKey } from './charge-request.ts'
import type { PspContext } from './context.ts'
import { PspError } from './errors.ts'
import { parseJsonObject, readBody, sendJson } from './http-io.ts'
import type { PspLimits } from './limits.ts'
import type { Refund, RefundParams } from './refund.ts'
import { keys } from './store.ts'

const knownFields = new Set(['charge', 'amount', 'reference'])
// Printable ASCII without spaces, as for charges.
const tokenPattern = /^[\x21-\x7e]+$/

export function parseRefundRequest (body: Record<string, unknown>, limits: PspLimits): RefundParams {
  for (const field of Object.keys(body)) {
    if (!knownFields.has(field)) throw new PspError('parameter_unknown', { param: field, message: `Received unknown parameter: ${field}` })
  }
  const text = (field: string): string => {
    const value = body[field]
    if (value === undefined || value === null || value === '') throw new PspError('parameter_missing', { param: field, message: `Missing required param: ${field}` })
    if (typeof value !== 'string' || value.length > limits.referenceLengthMax || !tokenPattern.test(value)) {
      throw new PspError('parameter_invalid', { param: field, message: `${field} must be a string of 1..${limits.referenceLengthMax} printable ASCII characters` })
    }
    return value
  }
  const amount = body.amount
  if (amount === undefined || amount === null) throw new PspError('parameter_missing', { param: 'amount', message: 'Missing required param: amount' })
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0 || amount > limits.amountMinorMax) {
    throw new PspError('amount_invalid', { param: 'amount', message: `amount must be an integer in minor units within 1..${limits.amountMinorMax}` })
  }
  return { charge: text('charge'), amount, reference: text('reference') }
}

export async function createRefundRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const idempotencyKey = readIdempotencyKey(req, ctx.limits)
  const params = parseRefundRequest(parseJsonObject(await readBody(req, ctx.limits.bodyBytesMax)), ctx.limits)
  const result = await ctx.refunds.create(idempotencyKey, params)
  if (result.kind === 'replayed') {
    sendJson(res, 200, result.refund, { 'idempotent-replayed': 'true', 'request-id': requestId })
    return
  }
  if (result.holdResponse) {
    ctx.log.info({ checkout_id: result.refund.payment_reference, refund_id: result.refund.id }, 'refund written; holding the answer (injected timeout)')
    ctx.held.hold(res, ctx.runtime.config.timeoutHoldMs)
    return
  }
  sendJson(res, 201, result.refund, { 'request-id': requestId })
}

export function listRefundsRoute (ctx: PspContext, res: ServerResponse, query: URLSearchParams, requestId: string): void {
  const key = query.get('idempotency_key')
  if (key === null || key === '') {
    throw new PspError('parameter_missing', { param: 'idempotency_key', message: 'Listing refunds requires idempotency_key' })
  }
  const raw = ctx.store.get(keys.refundIdempotency(key))
  const refund = raw === undefined ? undefined : ctx.store.getRefund((JSON.parse(raw) as { refund_id: string }).refund_id)
  sendJson(res, 200, { object: 'list', data: refund === undefined ? [] : [refund], has_more: false }, { 'request-id': requestId })
}

export function getRefundRoute (ctx: PspContext, res: ServerResponse, id: string, requestId: string): void {
  const refund = id === '' ? undefined : ctx.store.getRefund(id)
  if (refund === undefined) throw new PspError('resource_missing', { param: 'id', message: `No such refund: '${id.slice(0, 64)}'` })
  sendJson(res, 200, refund, { 'request-id': requestId })
}

/** Every refund ever created for the key, from the y/ index (written apart from the q/ record). */
export function adminRefundsRoute (ctx: PspContext, res: ServerResponse, query: URLSearchParams): void {
  const key = query.get('idempotency_key')
  if (key === null || key === '') throw new PspError('parameter_missing', { param: 'idempotency_key' })
  const refunds = ctx.store.idList(keys.refundIndex(key)).map((id) => ctx.store.getRefund(id)).filter((r): r is Refund => r !== undefined)
  sendJson(res, 200, { object: 'list', data: refunds })
}
