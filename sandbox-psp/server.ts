// The sandbox PSP's HTTP listener: routing, authentication, request ids, error answers, metrics,
// and the count of requests in flight that graceful shutdown waits for.
// Open routes: GET /healthz, GET /metrics. Everything else needs the secret key.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { adminChargesRoute, discrepanciesRoute, generateRoute, getConfigRoute, putConfigRoute, statsBody } from './admin-routes.ts'
import type { PspContext } from './context.ts'
import { PspError } from './errors.ts'
import { requireSecretKey, sendError, sendJson, splitUrl } from './http-io.ts'
import { RequestDurationRecorder } from '../lib/request-duration.ts'
import { randomId } from './ids.ts'
import { customerPagePathPrefix } from './customer-action.ts'
import { customerPageRoute } from './customer-routes.ts'
import { adminRefundsRoute, createRefundRoute, getRefundRoute, listRefundsRoute } from './refund-routes.ts'
import { cancelChargeRoute, captureChargeRoute, createChargeRoute, getChargeRoute, listChargesRoute, settlementRoute } from './routes.ts'

type Matched = { route: string, done: Promise<void> | void }

const chargesPrefix = '/v1/charges/'
const cancelSuffix = '/cancel'
const captureSuffix = '/capture'
const refundsPrefix = '/v1/refunds/'
const settlementsPrefix = '/v1/settlements/'
const discrepanciesPrefix = '/admin/settlements/'
const discrepanciesSuffix = '/discrepancies'
const csvSuffix = '.csv'

function only (req: IncomingMessage, method: string): void {
  if (req.method !== method) throw new PspError('method_not_allowed')
}

function route (ctx: PspContext, req: IncomingMessage, res: ServerResponse, requestId: string): Matched {
  const { path, query } = splitUrl(req.url ?? '/')
  if (path === '/healthz') {
    sendJson(res, 200, { status: 'ok' })
    return { route: '/healthz', done: undefined }
  }
  if (path === '/metrics') {
    return {
      route: '/metrics',
      done: ctx.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': ctx.metrics.registry.contentType })
        res.end(text)
      }),
    }
  }
  // The customer's page: no API key (the link's token stands for it).
  if (path.startsWith(customerPagePathPrefix)) return customerPageRoute(ctx, req, res, path, query)
  requireSecretKey(req, ctx.secretKeyDigest)
  if (path === '/v1/charges') {
    if (req.method === 'POST') return { route: 'POST /v1/charges', done: createChargeRoute(ctx, req, res, requestId) }
    only(req, 'GET')
    return { route: 'GET /v1/charges', done: listChargesRoute(ctx, res, query, requestId) }
  }
  if (path.startsWith(chargesPrefix) && path.endsWith(cancelSuffix)) {
    only(req, 'POST')
    return { route: 'POST /v1/charges/:id/cancel', done: cancelChargeRoute(ctx, req, res, path.slice(chargesPrefix.length, -cancelSuffix.length), requestId) }
  }
  if (path.startsWith(chargesPrefix) && path.endsWith(captureSuffix)) {
    only(req, 'POST')
    return { route: 'POST /v1/charges/:id/capture', done: captureChargeRoute(ctx, req, res, path.slice(chargesPrefix.length, -captureSuffix.length), requestId) }
  }
  if (path.startsWith(chargesPrefix)) {
    only(req, 'GET')
    return { route: '/v1/charges/:id', done: getChargeRoute(ctx, res, path.slice(chargesPrefix.length), requestId) }
  }
  if (path === '/v1/refunds') {
    if (req.method === 'POST') return { route: 'POST /v1/refunds', done: createRefundRoute(ctx, req, res, requestId) }
    only(req, 'GET')
    return { route: 'GET /v1/refunds', done: listRefundsRoute(ctx, res, query, requestId) }
  }
  if (path.startsWith(refundsPrefix)) {
    only(req, 'GET')
    return { route: '/v1/refunds/:id', done: getRefundRoute(ctx, res, path.slice(refundsPrefix.length), requestId) }
  }
  if (path === '/admin/refunds') {
    only(req, 'GET')
    return { route: '/admin/refunds', done: adminRefundsRoute(ctx, res, query) }
  }
  if (path.startsWith(settlementsPrefix) && path.endsWith(csvSuffix)) {
    only(req, 'GET')
    return { route: '/v1/settlements/:date.csv', done: settlementRoute(ctx, res, path.slice(settlementsPrefix.length, -csvSuffix.length), requestId) }
  }
  if (path === '/admin/config') {
    if (req.method === 'PUT') return { route: 'PUT /admin/config', done: putConfigRoute(ctx, req, res) }
    only(req, 'GET')
    return { route: 'GET /admin/config', done: getConfigRoute(ctx, res) }
  }
  if (path === '/admin/charges') {
    only(req, 'GET')
    return { route: '/admin/charges', done: adminChargesRoute(ctx, res, query) }
  }
  if (path === '/admin/stats') {
    only(req, 'GET')
    sendJson(res, 200, statsBody(ctx))
    return { route: '/admin/stats', done: undefined }
  }
  if (path.startsWith(discrepanciesPrefix) && path.endsWith(discrepanciesSuffix)) {
    const date = path.slice(discrepanciesPrefix.length, -discrepanciesSuffix.length)
    return { route: '/admin/settlements/:date/discrepancies', done: discrepanciesRoute(ctx, req, res, date) }
  }
  if (path === '/admin/generate') {
    only(req, 'POST')
    return { route: '/admin/generate', done: generateRoute(ctx, req, res) }
  }
  throw new PspError('resource_missing', { message: `Unrecognized request URL (${req.method ?? ''} ${path.slice(0, 100)})` })
}

export interface PspServer {
  server: Server
  /** Requests whose handler has not finished (held responses excluded: they finished). */
  inFlight: () => number
  /** Resolves once no request is in flight. */
  drained: () => Promise<void>
}

export function createPspServer (ctx: PspContext): PspServer {
  const durations = new RequestDurationRecorder(ctx.metrics.requestDuration)
  let inFlight = 0
  let onIdle: (() => void) | undefined
  const server = createServer({
    requestTimeout: ctx.limits.requestTimeoutMs,
    headersTimeout: ctx.limits.requestTimeoutMs,
    // Longer than nginx's and undici's keep-alive, so the client always closes first.
    keepAliveTimeout: 65_000,
    maxHeaderSize: 16 * 1024,
  }, (req, res) => {
    const startedAt = performance.now()
    const requestId = randomId('req')
    let routeName = 'unmatched'
    inFlight++
    const settle = (): void => {
      inFlight--
      if (inFlight === 0 && onIdle !== undefined) onIdle()
    }
    res.once('close', () => {
      durations.observe(routeName, req.method ?? '', res.headersSent ? res.statusCode : 'none', (performance.now() - startedAt) / 1000)
    })
    const fail = (error: unknown): void => {
      if (error instanceof PspError) {
        sendError(res, error, requestId)
      } else {
        ctx.log.error({ err: error, url: req.url?.split('?')[0] }, 'request failed unexpectedly')
        sendError(res, new PspError('internal_error'), requestId)
      }
    }
    try {
      const matched = route(ctx, req, res, requestId)
      routeName = matched.route
      if (matched.done instanceof Promise) {
        matched.done.catch(fail).finally(settle)
        return
      }
    } catch (error) {
      fail(error)
    }
    settle()
  })
  server.on('clientError', (error, socket) => {
    if (socket.writable) {
      const body = JSON.stringify(new PspError('parameter_invalid', { message: 'Malformed HTTP request' }).toBody())
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    } else {
      socket.destroy(error)
    }
  })
  return {
    server,
    inFlight: () => inFlight,
    drained: () => inFlight === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
        onIdle = () => { onIdle = undefined; resolve() }
      }),
  }
}
