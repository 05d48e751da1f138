// The operators' admin API: merchants and their API keys. JSON in, JSON out, problem+json errors
// with stable codes (errors.ts). Every call needs an operator token (operator-auth.ts); every
// change goes through admin/keys-file.ts (serialised with the CLI's, atomic, audited) and is in
// force on every node, the reporting service and the notifier within their keys poll (2 s).
//
//   POST /admin/merchants                    {merchant_id, label?}                 201 merchant
//   POST /admin/merchants/{id}/keys          {scope?, label?, expires_at?}         201 key + secret (shown once)
//   GET  /admin/merchants/{id}/keys                                                200 list of keys (no secret, no digest)
//   GET  /admin/keys/{key_id}                                                      200 key
//   POST /admin/keys/{key_id}/roll           {grace_period_seconds?}               201 new key + secret, rolled_key
//   POST /admin/keys/{key_id}/revoke                                               200 key (revoked; again: 200, unchanged)
//
// Served on 127.0.0.1 only and reached through nginx's internal listener (never the public one).

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from '../lib/log.ts'
import { apiKeyScopes } from '../payment-svc/api-keys.ts'
import { clientIpOf, requestIdOf } from '../payment-svc/client-identity.ts'
import { ProblemError } from '../payment-svc/errors.ts'
import { isJsonContentType, parseJson, readBody, sendJson, serveProbes, splitUrl } from '../payment-svc/http-io.ts'
import { AdminProblem, adminProblems, problemOfKeysFile, sendAdminProblem } from './errors.ts'
import { KeysFile, KeysFileError, keysFileLimits, type Actor, type AuditRecord } from './keys-file.ts'
import { adminLimits as limits } from './limits.ts'
import { operatorFor, type Operator } from './operator-auth.ts'

export interface AdminContext {
  keysFile: KeysFile
  operators: readonly Operator[]
  /** Peers whose X-Real-IP is believed (nginx). */
  trustedProxies: ReadonlySet<string>
  log: Logger
  registry: Registry
  onRequest?: (route: string, status: number, seconds: number) => void
  onAuthFailure?: () => void
  onChange?: (action: AuditRecord['action']) => void
}

type FieldError = { field: string, code: string, message: string }

/** The body as an object of the allowed fields (an empty body is {}); validation_failed otherwise. */
async function bodyOf (req: IncomingMessage, allowed: readonly string[]): Promise<Record<string, unknown>> {
  const text = await readBody(req, limits.bodyBytesMax)
  if (text.length === 0) return {}
  if (!isJsonContentType(req.headers['content-type'])) throw new AdminProblem('unsupported_media_type')
  const body = parseJson(text)
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AdminProblem('validation_failed', { errors: [{ field: 'body', code: 'type', message: 'the body is a JSON object' }] })
  }
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k))
  if (unknown.length > 0) {
    throw new AdminProblem('validation_failed', { errors: unknown.map((field) => ({ field, code: 'unknown_field', message: `${field} is not a field of this request` })) })
  }
  return body as Record<string, unknown>
}

function optionalString (body: Record<string, unknown>, field: string, errors: FieldError[]): string | undefined {
  const value = body[field]
  if (value === undefined) return undefined
  if (typeof value !== 'string') {
    errors.push({ field, code: 'type', message: `${field} is a string` })
    return undefined
  }
  return value
}

function refuseIfErrors (errors: FieldError[]): void {
  if (errors.length > 0) throw new AdminProblem('validation_failed', { errors })
}

function keyAnswer (key: object, secret: string): Record<string, unknown> {
  // The secret is in this answer and nowhere else: not stored, not logged.
  return { ...key, secret }
}

function actorOf (operator: string, req: IncomingMessage): Actor {
  const requestId = requestIdOf(req)
  return { operator, via: 'api', ...(requestId === undefined ? {} : { requestId }) }
}

const merchantKeysPath = /^\/admin\/merchants\/([^/]+)\/keys$/
const keyPath = /^\/admin\/keys\/([^/]+)(?:\/(roll|revoke))?$/

function allow (res: ServerResponse, methods: string): never {
  res.setHeader('allow', methods)
  throw new AdminProblem('method_not_allowed')
}

/**
 * The operator of the request, or 401. Failures are logged with client IP and nginx's request id,
 * never the token, and counted (ringpay_admin_auth_failures_total). No per-IP lockout: a token is
 * 256 random bits, so guessing is hopeless, and a lockout that also refused the right token would
 * let anyone on the operator side lock the operators out.
 */
function authenticate (ctx: AdminContext, req: IncomingMessage): string {
  const operator = operatorFor(ctx.operators, req.headers.authorization)
  if (operator !== undefined) return operator
  ctx.onAuthFailure?.()
  ctx.log.warn({ client_ip: clientIpOf(req, ctx.trustedProxies), request_id: requestIdOf(req), reason: req.headers.authorization === undefined ? 'no_token' : 'unknown_token' }, 'admin authentication failed')
  throw new AdminProblem('unauthorized')
}

async function route (ctx: AdminContext, req: IncomingMessage, res: ServerResponse, path: string, operator: string): Promise<string> {
  const method = req.method ?? 'GET'
  if (path === '/admin/merchants') {
    if (method !== 'POST') allow(res, 'POST')
    const body = await bodyOf(req, ['merchant_id', 'label'])
    const errors: FieldError[] = []
    const merchantId = optionalString(body, 'merchant_id', errors)
    if (merchantId === undefined && errors.length === 0) errors.push({ field: 'merchant_id', code: 'required', message: 'merchant_id is required' })
    const label = optionalString(body, 'label', errors)
    refuseIfErrors(errors)
    const merchant = await ctx.keysFile.createMerchant(actorOf(operator, req), merchantId!, label)
    changed(ctx, req, operator, 'merchant.created', merchant.merchant_id)
    sendJson(res, 201, merchant)
    return 'merchants.create'
  }
  const merchantKeys = merchantKeysPath.exec(path)
  if (merchantKeys !== null) {
    const merchantId = decodeURIComponent(merchantKeys[1]!)
    if (method === 'GET') {
      const keys = ctx.keysFile.listKeys(merchantId)
      sendJson(res, 200, { object: 'list', merchant_id: merchantId, data: keys })
      return 'keys.list'
    }
    if (method !== 'POST') allow(res, 'GET, POST')
    const body = await bodyOf(req, ['scope', 'label', 'expires_at'])
    const errors: FieldError[] = []
    const scope = optionalString(body, 'scope', errors)
    if (scope !== undefined && !(apiKeyScopes as readonly string[]).includes(scope)) errors.push({ field: 'scope', code: 'enum', message: `scope is one of ${apiKeyScopes.join(', ')}` })
    const label = optionalString(body, 'label', errors)
    const expiresAt = optionalString(body, 'expires_at', errors)
    refuseIfErrors(errors)
    const { key, secret } = await ctx.keysFile.issueKey(actorOf(operator, req), {
      merchantId,
      ...(scope === undefined ? {} : { scope: scope as typeof apiKeyScopes[number] }),
      ...(label === undefined ? {} : { label }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    })
    changed(ctx, req, operator, 'key.issued', merchantId, key.id)
    sendJson(res, 201, keyAnswer(key, secret))
    return 'keys.issue'
  }
  const keyMatch = keyPath.exec(path)
  if (keyMatch !== null) {
    const keyId = decodeURIComponent(keyMatch[1]!)
    const action = keyMatch[2]
    if (action === undefined) {
      if (method !== 'GET') allow(res, 'GET')
      sendJson(res, 200, ctx.keysFile.getKey(keyId))
      return 'keys.get'
    }
    if (method !== 'POST') allow(res, 'POST')
    if (action === 'roll') {
      const body = await bodyOf(req, ['grace_period_seconds'])
      const grace = body.grace_period_seconds
      const graceSMax = keysFileLimits.graceMsMax / 1000
      if (grace !== undefined && (!Number.isSafeInteger(grace) || (grace as number) < 0 || (grace as number) > graceSMax)) {
        throw new AdminProblem('validation_failed', { errors: [{ field: 'grace_period_seconds', code: 'range', message: `an integer 0..${graceSMax} (default ${keysFileLimits.graceMsDefault / 1000})` }] })
      }
      const { key, secret, rolled } = await ctx.keysFile.rollKey(actorOf(operator, req), keyId, grace === undefined ? keysFileLimits.graceMsDefault : (grace as number) * 1000)
      changed(ctx, req, operator, 'key.rolled', key.merchant_id, key.id, keyId)
      sendJson(res, 201, { ...keyAnswer(key, secret), rolled_key: rolled })
      return 'keys.roll'
    }
    await bodyOf(req, [])
    const { key, changed: revokedNow } = await ctx.keysFile.revokeKey(actorOf(operator, req), keyId)
    if (revokedNow) changed(ctx, req, operator, 'key.revoked', key.merchant_id, keyId)
    sendJson(res, 200, key, revokedNow ? undefined : { 'idempotent-replayed': 'true' })
    return 'keys.revoke'
  }
  throw new AdminProblem('not_found')
}

/** The service's log line for a change (the audit file has its own, written with the change). */
function changed (ctx: AdminContext, req: IncomingMessage, operator: string, action: AuditRecord['action'], merchantId: string, keyId?: string, rolledKeyId?: string): void {
  ctx.onChange?.(action)
  ctx.log.info({ audit: true, operator, action, merchant_id: merchantId, key_id: keyId, rolled_key_id: rolledKeyId, request_id: requestIdOf(req) }, 'admin change')
}

/** The server's request handler. Rejects only on a bug. */
export async function handle (ctx: AdminContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now()
  let routeName = 'other'
  try {
    const url = req.url ?? '/'
    if (url.length > limits.urlBytesMax) throw new AdminProblem('not_found')
    const { path } = splitUrl(url)
    const probe = await serveProbes(path, res, { registry: ctx.registry, keysUnavailableReason: () => keysFileProblem(ctx) })
    if (probe !== undefined) {
      routeName = probe
      return
    }
    if (!path.startsWith('/admin/')) throw new AdminProblem('not_found')
    // Before routing: without a token, not even which paths exist is told.
    const operator = authenticate(ctx, req)
    routeName = await route(ctx, req, res, path, operator)
  } catch (error) {
    sendAdminProblem(res, asProblem(ctx, error, routeName))
  } finally {
    ctx.onRequest?.(routeName, res.statusCode, (performance.now() - startedAt) / 1000)
  }
}

/** Why the keys file cannot be changed now (readiness), or undefined. */
function keysFileProblem (ctx: AdminContext): string | undefined {
  try {
    ctx.keysFile.allKeys()
    return undefined
  } catch (error) {
    if (error instanceof KeysFileError) return error.code
    throw error
  }
}

function asProblem (ctx: AdminContext, error: unknown, routeName: string): AdminProblem {
  if (error instanceof AdminProblem) return error
  if (error instanceof KeysFileError) {
    if (error.code === 'keys_file_invalid' || error.code === 'keys_file_busy' || error.code === 'keys_file_full') {
      ctx.log.error({ err: error, code: error.code, route: routeName }, 'admin change refused: the keys file')
    }
    return problemOfKeysFile(error.code, error.message, error.field, error.extra, error)
  }
  // http-io's body helpers answer with the merchant API's codes; the admin registry has the same words.
  if (error instanceof ProblemError && error.code in adminProblems) {
    return new AdminProblem(error.code as keyof typeof adminProblems, { ...(error.detail === undefined ? {} : { detail: error.detail }), cause: error })
  }
  if (error instanceof URIError) return new AdminProblem('not_found')
  ctx.log.error({ err: error, route: routeName }, 'admin request failed')
  return new AdminProblem('internal_error')
}
