// Who is calling: the merchant of a public request's API key, for every service that answers
// merchants (the payment nodes, the reporting service). One implementation, so the keys file,
// the failed-key cap and the audit lines behave the same wherever a key is presented.

import type { IncomingMessage } from 'node:http'
import type { Logger } from '../lib/log.ts'
import type { ApiKeyRegistry, ApiKeyScope } from './api-keys.ts'
import { clientIpOf, requestIdOf } from './client-identity.ts'
import { ProblemError } from './errors.ts'
import type { FailedKeyLimiter } from './failed-key-limiter.ts'

export interface MerchantAuthContext {
  apiKeys: ApiKeyRegistry
  failedKeys: FailedKeyLimiter
  /** Peers whose X-Real-IP is believed. */
  trustedProxies: ReadonlySet<string>
  limits: { apiKeysRetryIntervalMs: number, failedKeyAttemptsMax: number, failedKeyWindowMs: number }
  log: Logger
}

/**
 * The merchant of the request's API key, if the key's scope allows `need` (`read`: any key;
 * `full`: not a restricted key, 403 api_key_scope_insufficient). A client IP over its failed-key
 * cap is refused first, whatever key it sends now; a wrong or expired key is counted against its
 * IP and logged with the IP and nginx's request id, never the key.
 */
export function authenticateMerchant (ctx: MerchantAuthContext, req: IncomingMessage, need: ApiKeyScope, onFailure?: () => void): string {
  // Without a valid keys file no key is accepted, the revoked ones included (fail closed); a 503
  // rather than a 401 tells the client it is the node, not its key, and to retry. Why the file
  // is bad is for the node's log and its admin port, not for the public.
  if (ctx.apiKeys.unavailableReason !== undefined) {
    throw new ProblemError('api_keys_unavailable', { retryAfterS: Math.ceil(ctx.limits.apiKeysRetryIntervalMs / 1000) })
  }
  const authorization = req.headers.authorization
  // Until some IP sends a wrong key (the usual case) this costs one size check; then one Map lookup.
  if (ctx.failedKeys.trackedIps > 0) {
    const blockedForS = ctx.failedKeys.blockedForS(clientIpOf(req, ctx.trustedProxies), Date.now())
    if (blockedForS > 0) throw new ProblemError('auth_attempts_exceeded', { retryAfterS: blockedForS })
  }
  const grant = ctx.apiKeys.grantFor(authorization)
  if (grant !== undefined) {
    if (need === 'full' && grant.scope !== 'full') throw new ProblemError('api_key_scope_insufficient')
    return grant.merchantId
  }
  const ip = clientIpOf(req, ctx.trustedProxies)
  const nowMs = Date.now()
  const requestId = requestIdOf(req)
  if (authorization === undefined) {
    // Not a guess: not counted. Logged for the trail at info.
    ctx.log.info({ client_ip: ip, request_id: requestId, reason: 'no_key' }, 'authentication failed')
    throw new ProblemError('unauthorized')
  }
  const failures = ctx.failedKeys.recordFailure(ip, nowMs)
  onFailure?.()
  ctx.log.warn({ client_ip: ip, request_id: requestId, reason: 'unknown_key', failures }, 'authentication failed')
  if (failures === ctx.limits.failedKeyAttemptsMax) {
    // Once per window: the refusals that follow are not logged one by one.
    ctx.log.warn({ client_ip: ip, request_id: requestId, failures, window_ms: ctx.limits.failedKeyWindowMs },
      'failed API key attempts capped: client IP refused until its window ends')
  }
  throw new ProblemError('unauthorized')
}
