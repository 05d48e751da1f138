// The PSP's public API (/v1), what processors and the reconciler call.
//   POST /v1/charges                              create (Idempotency-Key required)
//   GET  /v1/charges?idempotency_key=<key>        {object: "list", data: [charge]} (0 or 1 entries; a key past its retention: 0)
//   GET  /v1/charges?reference=<reference>        {object: "list", data: [charge, ...]} every charge with this reference, oldest first
//   GET  /v1/charges/<id>                         one charge
//   POST /v1/charges/<id>/cancel                  cancel a requires_action charge, void a requires_capture one (idempotent)
//   POST /v1/charges/<id>/capture                 capture an authorization {amount?} (Idempotency-Key required)
//   GET  /v1/settlements/<YYYY-MM-DD>.csv         settlement report (settlement.ts)

import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseChargeRequest, readIdempotencyKey } from './charge-request.ts'
import type { PspContext } from './context.ts'
import { PspError } from './errors.ts'
import { parseJsonObject, readBody, sendJson, sendJsonText } from './http-io.ts'
import { liveIdempotency } from './key-retention.ts'
import { isReportDate, writeSettlementReport } from './settlement.ts'

export async function createChargeRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const idempotencyKey = readIdempotencyKey(req, ctx.limits)
  const body = parseJsonObject(await readBody(req, ctx.limits.bodyBytesMax))
  const { params, rule } = parseChargeRequest(body, ctx.limits)
  const result = await ctx.charges.create(idempotencyKey, params, rule)
  if (result.kind === 'replayed') {
    sendJson(res, 200, result.charge, { 'idempotent-replayed': 'true', 'request-id': requestId })
    return
  }
  if (result.holdResponse) {
    ctx.log.info({ checkout_id: params.reference, charge_id: result.charge.id }, 'charge written; holding the answer (injected timeout)')
    ctx.held.hold(res, ctx.runtime.config.timeoutHoldMs)
    return
  }
  sendJsonText(res, 201, result.json, { 'request-id': requestId })
}

export function listChargesRoute (ctx: PspContext, res: ServerResponse, query: URLSearchParams, requestId: string): void {
  const reference = query.get('reference')
  if (reference !== null && reference !== '') {
    // Issue #16: the search that outlives key retention (the n/ index, kept for good). A
    // reference is unique per merchant, not across them (#17 part 5): `merchant_id` narrows it.
    const merchantId = query.get('merchant_id')
    const charges = ctx.store.chargesForReference(reference).filter((charge) => merchantId === null || charge.merchant_id === merchantId)
    sendJson(res, 200, { object: 'list', data: charges, has_more: false }, { 'request-id': requestId })
    return
  }
  const key = query.get('idempotency_key')
  if (key === null || key === '') {
    throw new PspError('parameter_missing', { param: 'idempotency_key', message: 'Listing charges requires idempotency_key or reference' })
  }
  const record = liveIdempotency(ctx.store, key, ctx.runtime.config.idempotencyKeyRetentionMs, Date.now())
  const charge = record === undefined ? undefined : ctx.store.getCharge(record.charge_id)
  sendJson(res, 200, { object: 'list', data: charge === undefined ? [] : [charge], has_more: false }, { 'request-id': requestId })
}

export function getChargeRoute (ctx: PspContext, res: ServerResponse, id: string, requestId: string): void {
  const charge = id === '' ? undefined : ctx.store.getCharge(id)
  if (charge === undefined) throw new PspError('resource_missing', { param: 'id', message: `No such charge: '${id.slice(0, 64)}'` })
  sendJson(res, 200, charge, { 'request-id': requestId })
}

export async function cancelChargeRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, id: string, requestId: string): Promise<void> {
  // No parameters (Stripe's cancellation_reason is not modelled); the body, if any, is ignored.
  await readBody(req, ctx.limits.bodyBytesMax)
  const result = await ctx.charges.cancel(id)
  if (result.kind === 'canceled') ctx.log.info({ checkout_id: result.charge.reference, charge_id: id }, 'charge canceled')
  sendJson(res, 200, result.charge, { 'request-id': requestId, ...(result.kind === 'replayed' ? { 'idempotent-replayed': 'true' } : {}) })
}

export async function captureChargeRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, id: string, requestId: string): Promise<void> {
  const idempotencyKey = readIdempotencyKey(req, ctx.limits)
  const text = await readBody(req, ctx.limits.bodyBytesMax)
  const body = text === '' ? {} : parseJsonObject(text)
  for (const field of Object.keys(body)) {
    if (field !== 'amount') throw new PspError('parameter_unknown', { param: field, message: `Received unknown parameter: ${field}` })
  }
  const amount = body.amount
  if (amount !== undefined && (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0 || amount > ctx.limits.amountMinorMax)) {
    throw new PspError('amount_invalid', { param: 'amount', message: `amount must be an integer in minor units within 1..${ctx.limits.amountMinorMax}` })
  }
  const result = await ctx.charges.capture(id, idempotencyKey, amount as number | undefined)
  if (result.kind === 'replayed') {
    sendJson(res, 200, result.charge, { 'idempotent-replayed': 'true', 'request-id': requestId })
    return
  }
  ctx.log.info({ checkout_id: result.charge.reference, charge_id: id, amount_captured: result.charge.amount_captured }, 'charge captured')
  if (result.holdResponse) {
    ctx.held.hold(res, ctx.runtime.config.timeoutHoldMs)
    return
  }
  sendJson(res, 200, result.charge, { 'request-id': requestId })
}

export async function settlementRoute (ctx: PspContext, res: ServerResponse, date: string, requestId: string): Promise<void> {
  if (!isReportDate(date)) throw new PspError('resource_missing', { message: 'Settlement reports are at /v1/settlements/<YYYY-MM-DD>.csv' })
  res.writeHead(200, {
    'content-type': 'text/csv; charset=utf-8',
    'content-disposition': `attachment; filename="settlement-${date}.csv"`,
    'request-id': requestId,
  })
  try {
    const result = await writeSettlementReport(ctx.store, date, res, ctx.limits, (rows) => ctx.metrics.count('settlementRowsStreamed', rows))
    ctx.log.info({ date, rows: result.rows, truncated: result.truncated }, 'settlement report served')
  } catch (error) {
    // The reader went away or the store failed mid-stream: a cut connection says so.
    ctx.log.warn({ err: error, date }, 'settlement report aborted')
    res.destroy()
  }
}
