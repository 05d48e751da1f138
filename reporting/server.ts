// The reporting API's HTTP routes: a merchant's own payments and refunds, as pages (GET /payments,
// GET /refunds) or as one CSV file (GET /reports/payments.csv, GET /reports/refunds.csv). nginx
// sends it every public request for these paths; the merchant is the API key's, exactly as on the
// payment nodes (payment-svc/merchant-auth.ts).

import type { IncomingMessage, ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'
import type { Registry } from 'prom-client'
import type { Logger } from '../lib/log.ts'
import { currencyExponent } from '../payment-svc/currencies.ts'
import { ProblemError } from '../payment-svc/errors.ts'
import { sendJson, sendProblem, serveProbes, splitUrl } from '../payment-svc/http-io.ts'
import { authenticateMerchant, type MerchantAuthContext } from '../payment-svc/merchant-auth.ts'
import { isoTime } from '../payment-svc/payment-view.ts'
import { reportingLimits as limits } from './limits.ts'
import {
  csvHeader, exportCopySql, listPage, parseListQuery, paymentListing, refundListing, UnknownCursor, type Listing, type ListQuery, type PaymentRow,
  type RefundRow,
} from './query.ts'

export interface ReportingContext extends MerchantAuthContext {
  pool: pg.Pool
  registry: Registry
  onRequest?: (route: string, status: number, seconds: number) => void
  onAuthFailure?: () => void
}

let listsInFlight = 0
let exportsInFlight = 0

function integer (text: string, what: string): number {
  const value = Number(text)
  // Amounts and versions are bigint columns; the nodes never write one past 2^53.
  if (!Number.isSafeInteger(value)) throw new Error(`${what} ${text} is not a safe integer`)
  return value
}

export function paymentListItem (row: PaymentRow): Record<string, unknown> {
  const item: Record<string, unknown> = {
    checkout_id: row.checkout_id,
    status: row.status,
    amount: integer(row.amount, 'amount'),
    amount_refunded: integer(row.amount_refunded, 'amount_refunded'),
    currency: row.currency,
    currency_exponent: currencyExponent(row.currency),
    version: integer(row.version, 'version'),
    created_at: isoTime(row.created_at.getTime()),
    updated_at: isoTime(row.updated_at.getTime()),
  }
  if (row.psp_reference !== null) item.psp_reference = row.psp_reference
  if (row.failure_code !== null) {
    item.failure_code = row.failure_code
    item.failure_message = row.failure_message ?? ''
  }
  if (row.flagged_reason !== null) item.flagged_reason = row.flagged_reason
  return item
}

/** A refund as the node shows it (payment-svc/payment-view.ts refundView), from its projected row. */
export function refundListItem (row: RefundRow): Record<string, unknown> {
  const item: Record<string, unknown> = {
    id: row.refund_id,
    object: 'refund',
    checkout_id: row.checkout_id,
    amount: integer(row.amount, 'amount'),
    currency: row.currency,
    currency_exponent: currencyExponent(row.currency),
    status: row.status,
    reason: row.reason,
    created_at: isoTime(row.created_at.getTime()),
    updated_at: isoTime(row.updated_at.getTime()),
  }
  if (row.psp_reference !== null) item.psp_reference = row.psp_reference
  if (row.failure_code !== null) {
    item.failure_code = row.failure_code
    item.failure_message = row.failure_message ?? ''
  }
  return item
}

/** What a route lists: the listing, its public path, its list item, and what its rows are called. */
interface Route<Row> {
  listing: Listing<Row>
  path: string
  exportPath: string
  item: (row: Row) => Record<string, unknown>
  plural: 'payments' | 'refunds'
}

const paymentRoute: Route<PaymentRow> = { listing: paymentListing, path: '/payments', exportPath: '/reports/payments.csv', item: paymentListItem, plural: 'payments' }
const refundRoute: Route<RefundRow> = { listing: refundListing, path: '/refunds', exportPath: '/reports/refunds.csv', item: refundListItem, plural: 'refunds' }
const routes: ReadonlyArray<Route<any>> = [paymentRoute, refundRoute]

function parsed (listing: Listing<unknown>, query: URLSearchParams | undefined, rangeRequired: boolean): ListQuery {
  const result = parseListQuery(listing, query ?? new URLSearchParams(), { rangeRequired })
  if ('errors' in result) throw new ProblemError('invalid_query', { errors: result.errors })
  return result.query
}

async function listRoute<Row extends pg.QueryResultRow> (ctx: ReportingContext, route: Route<Row>, merchantId: string, query: URLSearchParams | undefined,
  res: ServerResponse): Promise<void> {
  const q = parsed(route.listing, query, false)
  if (listsInFlight >= limits.listsInFlightMax) throw new ProblemError('overloaded', { retryAfterS: 1 })
  listsInFlight++
  try {
    const { rows, hasMore } = await listPage(ctx.pool, route.listing, merchantId, q)
    sendJson(res, 200, { object: 'list', url: route.path, has_more: hasMore, data: rows.map(route.item) })
  } catch (error) {
    if (error instanceof UnknownCursor) {
      throw new ProblemError('invalid_query', { errors: [{ field: 'starting_after', code: 'unknown', message: `starting_after names none of your ${route.plural}` }] })
    }
    throw error
  } finally {
    listsInFlight--
  }
}

async function exportRoute (ctx: ReportingContext, route: Route<unknown>, merchantId: string, query: URLSearchParams | undefined, res: ServerResponse): Promise<void> {
  const q = parsed(route.listing, query, true)
  if (exportsInFlight >= limits.exportsInFlightMax) throw new ProblemError('rate_limited', { retryAfterS: 5, detail: 'another export is running; retry when it is done' })
  exportsInFlight++
  try {
    await streamExport(ctx, route, merchantId, q, res)
  } finally {
    exportsInFlight--
  }
}

/** One export: a pool connection of its own for the COPY, released (or discarded if broken) at the end. */
async function streamExport (ctx: ReportingContext, route: Route<unknown>, merchantId: string, q: ListQuery, res: ServerResponse): Promise<void> {
  const client = await ctx.pool.connect()
  let broken = false
  const deadline = setTimeout(() => { broken = true; res.destroy(new Error('export deadline passed')) }, limits.exportDeadlineMs)
  try {
    // One COPY streams the whole range: it gets the export's own deadline, not a page's.
    await client.query(`SET statement_timeout = ${limits.exportDeadlineMs}`)
    const stream = client.query(copyTo(exportCopySql(route.listing, merchantId, q, (value) => client.escapeLiteral(value))))
    const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10)
    res.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="${route.plural}-${day(q.createdGteMs!)}-${day(q.createdLtMs!)}.csv"`,
    })
    res.write(csvHeader(route.listing))
    // Backpressure end to end: a slow download slows the COPY, nothing piles up in memory. A
    // client that goes away ends it (the pipeline destroys the COPY stream).
    await pipeline(stream, res)
    ctx.log.info({ merchant_id: merchantId, rows: stream.rowCount }, `${route.plural} exported`)
  } catch (error) {
    broken = true
    // Headers sent: the client sees the connection cut before the end of the file, not a complete-looking 200.
    if (res.headersSent) {
      ctx.log.warn({ err: error, merchant_id: merchantId }, `${route.plural} export cut off`)
      res.destroy()
      return
    }
    throw error
  } finally {
    clearTimeout(deadline)
    if (broken) client.release(true)
    else {
      await client.query('RESET statement_timeout').then(() => client.release(), (error: Error) => client.release(error))
    }
  }
}

/** The server's request handler. Rejects only on a bug (answered 500 by the caller). */
export async function handle (ctx: ReportingContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now()
  const url = req.url ?? '/'
  let route = 'other'
  try {
    if (url.length > limits.queryBytesMax) throw new ProblemError('invalid_query', { detail: `the request target is longer than ${limits.queryBytesMax} bytes` })
    const { path, query } = splitUrl(url)
    const probe = await serveProbes(path, res, { registry: ctx.registry, keysUnavailableReason: () => ctx.apiKeys.unavailableReason })
    if (probe !== undefined) {
      route = probe
      return
    }
    const listed = routes.find((r) => r.path === path || r.exportPath === path)
    if (listed === undefined) throw new ProblemError('not_found')
    route = path
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET')
      throw new ProblemError('method_not_allowed')
    }
    const merchantId = authenticateMerchant(ctx, req, 'read', ctx.onAuthFailure)
    if (path === listed.path) await listRoute(ctx, listed, merchantId, query, res)
    else await exportRoute(ctx, listed, merchantId, query, res)
  } catch (error) {
    if (error instanceof ProblemError) sendProblem(res, error)
    else {
      ctx.log.error({ err: error, route }, 'reporting request failed')
      sendProblem(res, new ProblemError('internal_error'))
    }
  } finally {
    ctx.onRequest?.(route, res.statusCode, (performance.now() - startedAt) / 1000)
  }
}
