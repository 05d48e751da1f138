// The sandbox's own controls (not part of any real PSP), authenticated with the same secret key:
//   GET|PUT    /admin/config                               runtime configuration (config.ts)
//   GET        /admin/charges?idempotency_key=<key>        every charge ever created for the key
//   GET        /admin/stats                                counts (see statsBody)
//   GET|PUT|DELETE /admin/settlements/<date>/discrepancies report switches (discrepancies.ts)
//   POST       /admin/generate                             bulk succeeded charges (generate.ts)

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { PspContext } from './context.ts'
import { parseRuntimePatch } from './config.ts'
import { parseDiscrepancies } from './discrepancies.ts'
import { PspError } from './errors.ts'
import { defaultReferencePrefix, generateCharges, type GenerateOptions } from './generate.ts'
import { parseJsonObject, readBody, sendJson, writeWithBackpressure } from './http-io.ts'
import { normaliseCurrency } from './money.ts'
import { isReportDate, loadDiscrepancies } from './settlement.ts'
import { keys } from './store.ts'

export async function putConfigRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const patch = parseRuntimePatch(parseJsonObject(await readBody(req, ctx.limits.bodyBytesMax)), ctx.limits)
  const config = ctx.runtime.update(patch)
  ctx.log.info({ patch }, 'runtime configuration changed')
  // A base URL may just have been set, or delays shortened.
  ctx.dispatcher.wake()
  sendJson(res, 200, config)
}

export function getConfigRoute (ctx: PspContext, res: ServerResponse): void {
  sendJson(res, 200, ctx.runtime.config)
}

export function adminChargesRoute (ctx: PspContext, res: ServerResponse, query: URLSearchParams): void {
  const key = query.get('idempotency_key')
  if (key === null || key === '') throw new PspError('parameter_missing', { param: 'idempotency_key' })
  sendJson(res, 200, { object: 'list', data: ctx.store.chargesForKey(key) })
}

export function statsBody (ctx: PspContext): Record<string, unknown> {
  const d = ctx.store.counters
  const r = ctx.metrics.counters
  return {
    charges: {
      total: d.chargesTotal,
      succeeded: d.succeeded,
      failed: d.failed,
      pending: d.pending,
      requires_action: d.requiresAction,
      requires_capture: d.requiresCapture,
      canceled: d.canceled,
    },
    keysWithMultipleCharges: d.keysWithMultipleCharges,
    refunds: {
      total: d.refundsTotal,
      succeeded: d.refundsSucceeded,
      failed: d.refundsFailed,
      pending: d.refundsPending,
    },
    keysWithMultipleRefunds: d.keysWithMultipleRefunds,
    refundAttempts: r.refundAttempts,
    // Since process start:
    attempts: r.attempts,
    idempotentReplays: r.idempotentReplays,
    idempotencyMismatches: r.idempotencyMismatches,
    idempotencyInUse: r.idempotencyInUse,
    injected5xx: r.injected5xx,
    injectedTimeouts: r.injectedTimeouts,
    injectedRateLimits: r.injectedRateLimits,
    rule5xxOnce: r.rule5xxOnce,
    concurrencyRejections: r.concurrencyRejections,
    settlementRowsStreamed: r.settlementRowsStreamed,
    chargesGenerated: r.chargesGenerated,
    webhooks: {
      enqueued: d.webhooksEnqueued,
      delivered: d.webhooksDelivered,
      failed: d.webhooksFailed,
      dropped: d.webhooksDropped,
      pending: d.webhooksPending,
      attempts: r.webhookAttempts,
      attemptFailures: r.webhookAttemptFailures,
      inFlight: ctx.dispatcher.inFlight,
      /** In the in-memory due queue (at most webhookQueueEntriesMax; the rest waits on disk). */
      queued: ctx.dispatcher.queued,
    },
    inFlight: {
      chargeRequests: ctx.charges.inFlight,
      keysInProgress: ctx.charges.keysInProgress,
      heldResponses: ctx.held.size,
      writeQueue: ctx.store.queueDepth,
    },
  }
}

function requireDate (date: string): void {
  if (!isReportDate(date)) throw new PspError('parameter_invalid', { param: 'date', message: 'date must be YYYY-MM-DD' })
}

export async function discrepanciesRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, date: string): Promise<void> {
  requireDate(date)
  if (req.method === 'GET') {
    sendJson(res, 200, loadDiscrepancies(ctx.store, date))
    return
  }
  if (req.method === 'DELETE') {
    await ctx.store.write({ ops: [{ type: 'del', key: keys.discrepancies(date) }] })
    sendJson(res, 200, {})
    return
  }
  if (req.method !== 'PUT') throw new PspError('method_not_allowed')
  // The whole set for the date is replaced: what the test sends is what the report shows.
  const discrepancies = parseDiscrepancies(parseJsonObject(await readBody(req, ctx.limits.adminBodyBytesMax)), ctx.limits)
  await ctx.store.write({ ops: [{ type: 'put', key: keys.discrepancies(date), value: JSON.stringify(discrepancies) }] })
  sendJson(res, 200, discrepancies)
}

function optionalInteger (body: Record<string, unknown>, name: string, fallback: number): number {
  const value = body[name]
  if (value === undefined || value === null) return fallback
  if (typeof value !== 'number') throw new PspError('parameter_invalid', { param: name, message: `${name} must be an integer` })
  return value
}

function requiredText (body: Record<string, unknown>, name: string): string {
  const value = body[name]
  if (typeof value !== 'string' || value === '') throw new PspError('parameter_missing', { param: name, message: `Missing required param: ${name}` })
  return value
}

/**
 * Answers NDJSON, streamed as batches commit: one line per charge
 * {"reference","psp_reference","amount","currency","fee","net","created", "refund"?: {"reference",
 * "psp_reference","amount","created"}}, then a last line
 * {"object":"generation_summary",...}. A stream without the summary line was cut short.
 */
export async function generateRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = parseJsonObject(await readBody(req, ctx.limits.bodyBytesMax))
  const known = new Set(['date', 'count', 'merchant_id', 'seed', 'currency', 'reference_prefix', 'amount_min', 'amount_max', 'retrievable',
    'refund_every', 'refund_whole'])
  for (const name of Object.keys(body)) {
    if (!known.has(name)) throw new PspError('parameter_unknown', { param: name, message: `Received unknown parameter: ${name}` })
  }
  const date = requiredText(body, 'date')
  const seed = optionalInteger(body, 'seed', 0)
  const currency = normaliseCurrency(typeof body.currency === 'string' ? body.currency : 'EUR')
  if (currency === undefined) throw new PspError('currency_invalid', { param: 'currency' })
  const options: GenerateOptions = {
    date,
    count: optionalInteger(body, 'count', 0),
    merchantId: requiredText(body, 'merchant_id'),
    seed,
    currency,
    referencePrefix: typeof body.reference_prefix === 'string' ? body.reference_prefix : defaultReferencePrefix(date, seed),
    amountMin: optionalInteger(body, 'amount_min', 100),
    amountMax: optionalInteger(body, 'amount_max', 100_000),
    retrievable: body.retrievable === true,
    refundEvery: optionalInteger(body, 'refund_every', 0),
    refundWhole: body.refund_whole === true,
  }
  if (body.refund_whole !== undefined && typeof body.refund_whole !== 'boolean') {
    throw new PspError('parameter_invalid', { param: 'refund_whole', message: 'refund_whole must be a boolean' })
  }
  if (body.retrievable !== undefined && typeof body.retrievable !== 'boolean') {
    throw new PspError('parameter_invalid', { param: 'retrievable', message: 'retrievable must be a boolean' })
  }
  const startedAt = Date.now()
  const count = await generateCharges(ctx.store, options, ctx.limits, async (batch) => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    let chunk = ''
    for (const generated of batch) chunk += JSON.stringify(generated) + '\n'
    ctx.metrics.count('chargesGenerated', batch.length)
    await writeWithBackpressure(res, chunk)
  })
  const summary = {
    object: 'generation_summary',
    date,
    count,
    merchant_id: options.merchantId,
    seed,
    currency,
    reference_prefix: options.referencePrefix,
    elapsed_ms: Date.now() - startedAt,
  }
  ctx.log.info(summary, 'charges generated')
  res.end(JSON.stringify(summary) + '\n')
}
