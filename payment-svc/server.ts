// The node's two HTTP listeners: the nginx-facing one (public API, plus /internal/ for callers
// holding an internal service credential) and the admin one (metrics, health, internal API; never behind the
// public nginx server). Routing is a few string checks; the hot path allocates little.

import { AssertionError } from 'node:assert'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Logger } from '../lib/log.ts'
import { RequestDurationRecorder } from '../lib/request-duration.ts'
import type { ApiKeyRegistry } from './api-keys.ts'
import type { ApiKeysReloadOutcome, ApiKeysReloadTrigger } from './api-keys-reloader.ts'
import { ProblemError } from './errors.ts'
import { sendJson, sendProblem, splitUrl } from './http-io.ts'
import { applyRefundTransition, applyTransition, applyTransitionBatch, getInternalPayment, refundCanceledCharge, type InternalRouteContext } from './internal-routes.ts'
import type { NodeLimits } from './limits.ts'
import type { NodeMetrics } from './metrics.ts'
import type { PaymentService } from './payment-service.ts'
import { cancelPayment, capturePayment, createPayment, createRefund, getPayment, getRefund, type PublicRouteContext } from './public-routes.ts'
import { receiveWebhook, type WebhookRouteContext } from './webhook-routes.ts'

export interface ServerContext extends PublicRouteContext, InternalRouteContext, WebhookRouteContext {
  service: PaymentService
  apiKeys: ApiKeyRegistry
  reloadApiKeys: (trigger: ApiKeysReloadTrigger) => Promise<ApiKeysReloadOutcome>
  limits: NodeLimits
  metrics: NodeMetrics
  log: Logger
  /** Readiness: undefined when ready, else why not. */
  notReadyReason: () => string | undefined
  /** A bug was hit: the node must stop. */
  onBug: (error: unknown) => void
}

type Handler = (req: IncomingMessage, res: ServerResponse) => { route: string, done: Promise<void> | void }

const paymentsPrefix = '/payments/'
const internalPrefix = '/internal/payments/'
const internalBatchPath = '/internal/transitions'
const cancelSuffix = '/cancel'
const captureSuffix = '/capture'
const refundsSegment = '/refunds'
const webhooksPrefix = '/webhooks/psp/'

/**
 * The internal API names a payment by its merchant and checkout id (issue #17 part 5):
 * `/internal/payments/{merchant_id}/{checkout_id}` and, under it, `/transitions`,
 * `/refund_canceled_charge` and `/refunds/{refund_id}/transitions`. nginx's internal listener
 * routes by the X-PAYMENT-CHECKOUT-ID header (the checkout id alone), which every call carries.
 */
function internalRoute (ctx: ServerContext, req: IncomingMessage, res: ServerResponse, path: string): { route: string, done: Promise<void> | void } | undefined {
  if (path === internalBatchPath) {
    if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
    return { route: internalBatchPath, done: applyTransitionBatch(ctx, req, res) }
  }
  if (!path.startsWith(internalPrefix)) return undefined
  const [merchantId, checkoutId, action, refundId, refundAction, ...more] = path.slice(internalPrefix.length).split('/')
  if (merchantId === undefined || checkoutId === undefined || more.length > 0) throw new ProblemError('not_found')
  const id = { merchantId, checkoutId }
  if (action === undefined) {
    if (req.method !== 'GET') throw new ProblemError('method_not_allowed')
    return { route: '/internal/payments/:merchant_id/:id', done: getInternalPayment(ctx, req, res, id) }
  }
  if (action === 'transitions' && refundId === undefined) {
    if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
    return { route: '/internal/payments/:merchant_id/:id/transitions', done: applyTransition(ctx, req, res, id) }
  }
  if (action === 'refund_canceled_charge' && refundId === undefined) {
    if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
    return { route: '/internal/payments/:merchant_id/:id/refund_canceled_charge', done: refundCanceledCharge(ctx, req, res, id) }
  }
  if (action === 'refunds' && refundId !== undefined && refundAction === 'transitions') {
    if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
    return { route: '/internal/payments/:merchant_id/:id/refunds/:refund_id/transitions', done: applyRefundTransition(ctx, req, res, id, refundId) }
  }
  throw new ProblemError('not_found')
}

function publicHandler (ctx: ServerContext): Handler {
  return (req, res) => {
    const { path, query } = splitUrl(req.url ?? '/')
    if (path === '/payments') {
      if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
      return { route: '/payments', done: createPayment(ctx, req, res) }
    }
    if (path.startsWith(paymentsPrefix)) {
      const rest = path.slice(paymentsPrefix.length)
      if (rest.endsWith(cancelSuffix)) {
        if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
        return { route: '/payments/:id/cancel', done: cancelPayment(ctx, req, res, rest.slice(0, -cancelSuffix.length)) }
      }
      if (rest.endsWith(captureSuffix)) {
        if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
        return { route: '/payments/:id/capture', done: capturePayment(ctx, req, res, rest.slice(0, -captureSuffix.length)) }
      }
      const refundsAt = rest.indexOf(refundsSegment)
      if (refundsAt > 0) {
        const id = rest.slice(0, refundsAt)
        const tail = rest.slice(refundsAt + refundsSegment.length)
        if (tail === '') {
          if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
          return { route: '/payments/:id/refunds', done: createRefund(ctx, req, res, id) }
        }
        if (tail.startsWith('/') && tail.length > 1 && !tail.includes('/', 1)) {
          if (req.method !== 'GET') throw new ProblemError('method_not_allowed')
          return { route: '/payments/:id/refunds/:refund_id', done: getRefund(ctx, req, res, id, tail.slice(1)) }
        }
        throw new ProblemError('not_found')
      }
      if (req.method !== 'GET') throw new ProblemError('method_not_allowed')
      const id = rest
      return { route: '/payments/:id', done: getPayment(ctx, req, res, id, query) }
    }
    if (path.startsWith(webhooksPrefix)) {
      const [provider, id, ...rest] = path.slice(webhooksPrefix.length).split('/')
      if (provider === undefined || id === undefined || rest.length > 0) throw new ProblemError('not_found')
      if (req.method !== 'POST') throw new ProblemError('method_not_allowed')
      return { route: '/webhooks/psp/:provider/:id', done: receiveWebhook(ctx, req, res, provider, id) }
    }
    const internal = internalRoute(ctx, req, res, path)
    if (internal !== undefined) return internal
    throw new ProblemError('not_found')
  }
}

function adminHandler (ctx: ServerContext): Handler {
  return (req, res) => {
    const { path } = splitUrl(req.url ?? '/')
    if (path === '/metrics') {
      return {
        route: '/metrics',
        done: ctx.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': ctx.metrics.registry.contentType })
          res.end(text)
        }),
      }
    }
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'alive', node_id: ctx.service.nodeId })
      return { route: '/healthz', done: undefined }
    }
    if (path === '/readyz') {
      const reason = ctx.notReadyReason()
      sendJson(res, reason === undefined ? 200 : 503, { ready: reason === undefined, reason, node_id: ctx.service.nodeId })
      return { route: '/readyz', done: undefined }
    }
    if (path === '/admin/reload-keys' && req.method === 'POST') {
      ctx.internalAuth.require(req, { kind: 'reload_keys' })
      return {
        route: '/admin/reload-keys',
        // A bad file is answered 503 with its reason (no content of the file): the node now
        // refuses every API key until a valid file is loaded.
        done: ctx.reloadApiKeys('admin').then((outcome) => {
          if (outcome.ok) sendJson(res, 200, { keys: outcome.keys })
          else sendProblem(res, new ProblemError('api_keys_unavailable', { detail: outcome.message, extra: { reason: outcome.reason } }))
        }),
      }
    }
    const internal = internalRoute(ctx, req, res, path)
    if (internal !== undefined) return internal
    throw new ProblemError('not_found')
  }
}

function serve (ctx: ServerContext, handler: Handler): Server {
  const durations = new RequestDurationRecorder(ctx.metrics.requestDuration)
  const server = createServer({
    // The whole-request deadline (headers and body), however steadily a client dribbles: nginx
    // streams public bodies unbuffered, so this bounds slow clients behind nginx too. Node looks
    // for expired requests every connectionsCheckingInterval (30 s by default).
    requestTimeout: ctx.limits.requestDeadlineMs,
    headersTimeout: ctx.limits.requestDeadlineMs,
    connectionsCheckingInterval: ctx.limits.requestDeadlineCheckIntervalMs,
    // Longer than nginx's upstream keepalive_timeout (60 s), so nginx always closes first and
    // never sends a request on a connection we are closing.
    keepAliveTimeout: 65_000,
    maxHeaderSize: 16 * 1024,
  }, (req, res) => {
    const startedAt = performance.now()
    let route = 'unmatched'
    const finish = (): void => {
      durations.observe(route, req.method ?? '', res.statusCode, (performance.now() - startedAt) / 1000)
    }
    const fail = (error: unknown): void => {
      if (error instanceof ProblemError) {
        sendProblem(res, error)
      } else {
        ctx.log.error({ err: error, url: req.url?.split('?')[0] }, 'request failed unexpectedly')
        sendProblem(res, new ProblemError('internal_error'))
        if (error instanceof AssertionError) ctx.onBug(error)
      }
    }
    res.once('finish', finish)
    try {
      const matched = handler(req, res)
      route = matched.route
      if (matched.done instanceof Promise) matched.done.catch(fail)
    } catch (error) {
      fail(error)
    }
  })
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (socket.writable) {
      const deadline = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      const problem = deadline
        ? new ProblemError('request_timeout', { detail: `the whole request must arrive within ${ctx.limits.requestDeadlineMs} ms` })
        : new ProblemError('validation_failed', { detail: 'malformed HTTP request' })
      const body = JSON.stringify(problem.toBody())
      const statusLine = deadline ? '408 Request Timeout' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${statusLine}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    } else {
      socket.destroy(error)
    }
  })
  return server
}

export function createPublicServer (ctx: ServerContext): Server {
  return serve(ctx, publicHandler(ctx))
}

export function createAdminServer (ctx: ServerContext): Server {
  return serve(ctx, adminHandler(ctx))
}
