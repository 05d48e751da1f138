// The notifier's merchant API (nginx sends it /webhook_endpoints… and /events…): a merchant's
// webhook endpoints and its events. The merchant is the API key's, exactly as on the payment
// nodes and the reporting service (payment-svc/merchant-auth.ts); a `read` key may only GET.
// Another merchant's endpoint or event answers 404, like an unknown one.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type pg from 'pg'
import type { Registry } from 'prom-client'
import { containsCardNumber } from '../lib/card-numbers.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import { jsonHoldsCardNumber } from '../payment-svc/card-number-guard.ts'
import { ProblemError, type FieldError } from '../payment-svc/errors.ts'
import { isJsonContentType, parseJson, readBody, sendJson, sendProblem, serveProbes, splitUrl } from '../payment-svc/http-io.ts'
import { authenticateMerchant, type MerchantAuthContext } from '../payment-svc/merchant-auth.ts'
import { isoTime } from '../payment-svc/payment-view.ts'
import { allEventsWildcard, isMerchantEventType } from './events.ts'
import type { NotifierLimits } from './limits.ts'
import { newEndpointId, newEndpointSecret } from './secrets.ts'
import { assertHostAllowed, parseEndpointUrl, UrlRefused, type Resolver, type UrlPolicy } from './ssrf.ts'
import {
  createEndpoint, deleteEndpoint, enableEndpoint, EndpointDisabled, EndpointLimitReached, EndpointNotFound, EventNotFound, getEvent, listEndpoints, listEvents,
  redeliver, rollSecret, UnknownEventCursor, type EndpointRow,
} from './store.ts'

export interface NotifierApiContext extends MerchantAuthContext {
  pool: pg.Pool
  sealer: FieldSealer
  registry: Registry
  notifierLimits: NotifierLimits
  policy: UrlPolicy
  resolve?: Resolver
  /** A redelivery was asked for: look at the queue now. */
  onRedeliver: () => void
  /** An endpoint was created: its merchant's events are wanted from now on. */
  onEndpointCreated: (merchantId: string) => void
  onRequest?: (route: string, status: number, seconds: number) => void
  onAuthFailure?: () => void
}

const idPattern = /^[A-Za-z0-9_-]{1,64}$/

export function endpointView (row: EndpointRow, secret?: string): Record<string, unknown> {
  const view: Record<string, unknown> = {
    id: row.id,
    object: 'webhook_endpoint',
    url: row.url,
    events: row.events,
    status: row.status,
    created_at: isoTime(row.created_at.getTime()),
  }
  if (row.status === 'disabled') {
    view.disabled_reason = row.disabled_reason ?? ''
    if (row.disabled_at !== null) view.disabled_at = isoTime(row.disabled_at.getTime())
  }
  if (row.previous_secret_expires_at !== null && row.previous_secret_expires_at.getTime() > Date.now()) {
    view.previous_secret_expires_at = isoTime(row.previous_secret_expires_at.getTime())
  }
  // Shown once: in the answer that created or rolled it, never again.
  if (secret !== undefined) view.secret = secret
  return view
}

async function jsonBody (req: IncomingMessage, bytesMax: number, optional: boolean): Promise<Record<string, unknown>> {
  const text = await readBody(req, bytesMax)
  if (text === '' && optional) return {}
  if (!isJsonContentType(req.headers['content-type'])) throw new ProblemError('unsupported_media_type')
  const value = parseJson(text)
  // Every string and key of the body, JSON escapes decoded: a card number is refused, never stored or logged.
  if (jsonHoldsCardNumber(value)) throw new ProblemError('card_number_detected')
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProblemError('validation_failed', { errors: [{ field: '', code: 'type', message: 'the body must be a JSON object' }] })
  }
  return value as Record<string, unknown>
}

function unknownFields (body: Record<string, unknown>, known: readonly string[]): FieldError[] {
  return Object.keys(body).filter((k) => !known.includes(k)).map((field) => ({ field, code: 'unknown', message: `${field} is not a field of this request` }))
}

async function checkedUrl (ctx: NotifierApiContext, raw: unknown): Promise<string> {
  if (typeof raw !== 'string') throw new ProblemError('validation_failed', { errors: [{ field: 'url', code: 'required', message: 'url is a string' }] })
  if (containsCardNumber(raw)) throw new ProblemError('card_number_detected')
  try {
    const url = parseEndpointUrl(raw, ctx.policy, ctx.notifierLimits.urlCharsMax)
    await assertHostAllowed(url, ctx.policy, ctx.resolve)
    return url.toString()
  } catch (error) {
    if (error instanceof UrlRefused) throw new ProblemError('webhook_url_not_allowed', { detail: error.message, extra: { reason: error.code }, cause: error })
    throw error
  }
}

function checkedEvents (raw: unknown, typesMax: number): string[] {
  const invalid = (message: string): ProblemError => new ProblemError('validation_failed', { errors: [{ field: 'events', code: 'invalid', message }] })
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > typesMax) throw invalid(`events is a list of 1..${typesMax} event types, or ["*"]`)
  for (const type of raw) {
    if (typeof type !== 'string' || (type !== allEventsWildcard && !isMerchantEventType(type))) throw invalid(`${JSON.stringify(type).slice(0, 80)} is not an event type`)
  }
  return [...new Set(raw as string[])]
}

async function createRoute (ctx: NotifierApiContext, merchantId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await jsonBody(req, ctx.notifierLimits.bodyBytesMax, false)
  const unknown = unknownFields(body, ['url', 'events'])
  if (unknown.length > 0) throw new ProblemError('validation_failed', { errors: unknown })
  const events = checkedEvents(body.events, ctx.notifierLimits.eventTypesPerEndpointMax)
  const url = await checkedUrl(ctx, body.url)
  const secret = newEndpointSecret()
  try {
    const row = await createEndpoint(ctx.pool, ctx.sealer, { id: newEndpointId(), merchantId, url, events, secret }, ctx.notifierLimits.endpointsPerMerchantMax)
    ctx.onEndpointCreated(merchantId)
    ctx.log.info({ merchant_id: merchantId, endpoint_id: row.id, events }, 'webhook endpoint created')
    sendJson(res, 201, endpointView(row, secret))
  } catch (error) {
    if (error instanceof EndpointLimitReached) throw new ProblemError('webhook_endpoint_limit_reached', { detail: error.message, cause: error })
    throw error
  }
}

async function rollRoute (ctx: NotifierApiContext, merchantId: string, endpointId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await jsonBody(req, ctx.notifierLimits.bodyBytesMax, true)
  const unknown = unknownFields(body, ['grace_period_s'])
  if (unknown.length > 0) throw new ProblemError('validation_failed', { errors: unknown })
  const graceMax = ctx.notifierLimits.rollGracePeriodSMax
  const grace = body.grace_period_s ?? ctx.notifierLimits.rollGracePeriodSDefault
  if (typeof grace !== 'number' || !Number.isSafeInteger(grace) || grace < 0 || grace > graceMax) {
    throw new ProblemError('validation_failed', { errors: [{ field: 'grace_period_s', code: 'range', message: `grace_period_s is an integer in 0..${graceMax}` }] })
  }
  const secret = newEndpointSecret()
  const row = await rollSecret(ctx.pool, ctx.sealer, merchantId, endpointId, secret, grace)
  if (row === undefined) throw new ProblemError('webhook_endpoint_not_found')
  ctx.log.info({ merchant_id: merchantId, endpoint_id: endpointId, grace_period_s: grace }, 'webhook endpoint secret rolled')
  sendJson(res, 200, endpointView(row, secret))
}

function parseEventsQuery (ctx: NotifierApiContext, query: URLSearchParams | undefined): { limit: number, startingAfter: string | undefined, type: string | undefined, checkoutId: string | undefined } {
  const q = query ?? new URLSearchParams()
  const errors: FieldError[] = []
  for (const name of new Set(q.keys())) {
    if (!['limit', 'starting_after', 'type', 'checkout_id'].includes(name)) errors.push({ field: name, code: 'unknown', message: `${name} is not a parameter of this list` })
    else if (q.getAll(name).length > 1) errors.push({ field: name, code: 'repeated', message: `${name} is given more than once` })
  }
  const { pageSizeDefault, pageSizeMax } = ctx.notifierLimits
  const limitText = q.get('limit')
  const limit = limitText === null ? pageSizeDefault : Number(limitText)
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > pageSizeMax || (limitText !== null && !/^\d+$/.test(limitText))) {
    errors.push({ field: 'limit', code: 'range', message: `limit is an integer in 1..${pageSizeMax}` })
  }
  const startingAfter = q.get('starting_after') ?? undefined
  if (startingAfter !== undefined && !idPattern.test(startingAfter)) errors.push({ field: 'starting_after', code: 'invalid', message: 'starting_after is an event id' })
  const type = q.get('type') ?? undefined
  if (type !== undefined && !isMerchantEventType(type)) errors.push({ field: 'type', code: 'invalid', message: 'type is an event type' })
  const checkoutId = q.get('checkout_id') ?? undefined
  if (checkoutId !== undefined && !idPattern.test(checkoutId)) errors.push({ field: 'checkout_id', code: 'invalid', message: 'checkout_id is 1-64 of [A-Za-z0-9_-]' })
  if (errors.length > 0) throw new ProblemError('invalid_query', { errors })
  return { limit, startingAfter, type, checkoutId }
}

async function eventsRoute (ctx: NotifierApiContext, merchantId: string, query: URLSearchParams | undefined, res: ServerResponse): Promise<void> {
  const q = parseEventsQuery(ctx, query)
  try {
    const { items, hasMore } = await listEvents(ctx.pool, ctx.sealer, merchantId, q)
    sendJson(res, 200, { object: 'list', url: '/events', has_more: hasMore, data: items })
  } catch (error) {
    if (error instanceof UnknownEventCursor) {
      throw new ProblemError('invalid_query', { errors: [{ field: 'starting_after', code: 'unknown', message: error.message }] })
    }
    throw error
  }
}

async function redeliverRoute (ctx: NotifierApiContext, merchantId: string, eventId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await jsonBody(req, ctx.notifierLimits.bodyBytesMax, true)
  const unknown = unknownFields(body, ['endpoint_id'])
  if (unknown.length > 0) throw new ProblemError('validation_failed', { errors: unknown })
  const endpointId = body.endpoint_id
  if (endpointId !== undefined && (typeof endpointId !== 'string' || !idPattern.test(endpointId))) {
    throw new ProblemError('validation_failed', { errors: [{ field: 'endpoint_id', code: 'invalid', message: 'endpoint_id is a webhook endpoint id' }] })
  }
  try {
    const endpoints = await redeliver(ctx.pool, merchantId, eventId, endpointId, ctx.notifierLimits.retryWindowMs)
    ctx.onRedeliver()
    ctx.log.info({ merchant_id: merchantId, event_id: eventId, endpoints }, 'event redelivery requested')
    sendJson(res, 202, { id: eventId, object: 'event_redelivery', endpoint_ids: endpoints })
  } catch (error) {
    if (error instanceof EventNotFound) throw new ProblemError('event_not_found', { cause: error })
    if (error instanceof EndpointNotFound) throw new ProblemError('webhook_endpoint_not_found', { cause: error })
    if (error instanceof EndpointDisabled) throw new ProblemError('webhook_endpoint_disabled', { cause: error })
    throw error
  }
}

function safeDecode (text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return text
  }
}

function allow (res: ServerResponse, methods: string): ProblemError {
  res.setHeader('allow', methods)
  return new ProblemError('method_not_allowed')
}

/** The server's request handler. Rejects only on a bug. */
export async function handle (ctx: NotifierApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now()
  let route = 'other'
  try {
    const url = req.url ?? '/'
    if (url.length > ctx.notifierLimits.queryBytesMax) throw new ProblemError('invalid_query', { detail: `the request target is longer than ${ctx.notifierLimits.queryBytesMax} bytes` })
    const { path, query } = splitUrl(url)
    const method = req.method ?? 'GET'
    // As on the nodes: a card number anywhere in the target (an id, a filter) is refused, never
    // stored or logged. The target is percent-decoded first, so an escaped one is found too.
    if (containsCardNumber(safeDecode(url))) throw new ProblemError('card_number_detected')
    const probe = await serveProbes(path, res, { registry: ctx.registry, keysUnavailableReason: () => ctx.apiKeys.unavailableReason })
    if (probe !== undefined) {
      route = probe
      return
    }
    const parts = path.split('/').slice(1)
    if (parts[0] === 'webhook_endpoints' && parts.length === 1) {
      route = '/webhook_endpoints'
      if (method !== 'GET' && method !== 'POST') throw allow(res, 'GET, POST')
      const merchantId = authenticateMerchant(ctx, req, method === 'GET' ? 'read' : 'full', ctx.onAuthFailure)
      if (method === 'GET') {
        const rows = await listEndpoints(ctx.pool, merchantId)
        sendJson(res, 200, { object: 'list', url: '/webhook_endpoints', has_more: false, data: rows.map((r) => endpointView(r)) })
      } else {
        await createRoute(ctx, merchantId, req, res)
      }
      return
    }
    if (parts[0] === 'webhook_endpoints' && parts.length === 3 && parts[2] === 'enable' && idPattern.test(parts[1]!)) {
      route = '/webhook_endpoints/{id}/enable'
      if (method !== 'POST') throw allow(res, 'POST')
      const merchantId = authenticateMerchant(ctx, req, 'full', ctx.onAuthFailure)
      const row = await enableEndpoint(ctx.pool, merchantId, parts[1]!)
      if (row === undefined) throw new ProblemError('webhook_endpoint_not_found')
      ctx.log.info({ merchant_id: merchantId, endpoint_id: row.id }, 'webhook endpoint enabled')
      sendJson(res, 200, endpointView(row))
      return
    }
    if (parts[0] === 'webhook_endpoints' && (parts.length === 2 || (parts.length === 3 && parts[2] === 'roll_secret')) && idPattern.test(parts[1]!)) {
      const endpointId = parts[1]!
      if (parts.length === 2) {
        route = '/webhook_endpoints/{id}'
        if (method !== 'DELETE') throw allow(res, 'DELETE')
        const merchantId = authenticateMerchant(ctx, req, 'full', ctx.onAuthFailure)
        if (!(await deleteEndpoint(ctx.pool, merchantId, endpointId))) throw new ProblemError('webhook_endpoint_not_found')
        ctx.log.info({ merchant_id: merchantId, endpoint_id: endpointId }, 'webhook endpoint deleted')
        sendJson(res, 200, { id: endpointId, object: 'webhook_endpoint', deleted: true })
        return
      }
      route = '/webhook_endpoints/{id}/roll_secret'
      if (method !== 'POST') throw allow(res, 'POST')
      const merchantId = authenticateMerchant(ctx, req, 'full', ctx.onAuthFailure)
      await rollRoute(ctx, merchantId, endpointId, req, res)
      return
    }
    if (parts[0] === 'events' && parts.length === 1) {
      route = '/events'
      if (method !== 'GET') throw allow(res, 'GET')
      const merchantId = authenticateMerchant(ctx, req, 'read', ctx.onAuthFailure)
      await eventsRoute(ctx, merchantId, query, res)
      return
    }
    if (parts[0] === 'events' && parts.length === 2 && idPattern.test(parts[1]!)) {
      route = '/events/{id}'
      if (method !== 'GET') throw allow(res, 'GET')
      const merchantId = authenticateMerchant(ctx, req, 'read', ctx.onAuthFailure)
      const event = await getEvent(ctx.pool, ctx.sealer, merchantId, parts[1]!, ctx.notifierLimits.attemptsShownPerDeliveryMax)
      if (event === undefined) throw new ProblemError('event_not_found')
      sendJson(res, 200, event)
      return
    }
    if (parts[0] === 'events' && parts.length === 3 && parts[2] === 'redeliver' && idPattern.test(parts[1]!)) {
      route = '/events/{id}/redeliver'
      if (method !== 'POST') throw allow(res, 'POST')
      const merchantId = authenticateMerchant(ctx, req, 'full', ctx.onAuthFailure)
      await redeliverRoute(ctx, merchantId, parts[1]!, req, res)
      return
    }
    throw new ProblemError('not_found')
  } catch (error) {
    if (error instanceof ProblemError) sendProblem(res, error)
    else {
      ctx.log.error({ err: error, route }, 'notifier request failed')
      sendProblem(res, new ProblemError('internal_error'))
    }
  } finally {
    ctx.onRequest?.(route, res.statusCode, (performance.now() - startedAt) / 1000)
  }
}
