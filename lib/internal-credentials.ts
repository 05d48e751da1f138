// Per-service credentials of the nodes' internal API (issue #17 part 2, SECURITY.md). Every caller
// of /internal/ holds a random token of its own and sends it in `X-Ringpay-Internal-Token`;
// nginx's internal listener passes the header through and never adds one, so a process that can
// reach the listener but holds no token can do nothing. Nodes hold only the SHA-256 digest of
// each token, with the service it belongs to (`RINGPAY_INTERNAL_SERVICES`), and act as that
// service: what a service may do is the node's policy (payment-svc/internal-auth.ts).
//
// Shared by the node (parse), the stack runner (make the tokens, format the node's setting) and
// the callers (the header name).

import { hash, randomBytes } from 'node:crypto'

/** The request header carrying the caller's own token (lower case, as node:http reports it). */
export const internalTokenHeader = 'x-ringpay-internal-token'

/**
 * The services that may hold a credential. `processor`: the processors' charge flow and watchdog;
 * `ops`: operators and the test suite; `audit`: read-only checkers (the outcome checks of the
 * bench and the fault suite); `console`: the operators' web console (console/), whose signed-in
 * operators resolve flagged payments. `api` and `webhook` are not services: the node records those actors
 * itself, for merchant calls and verified PSP webhooks.
 */
export const internalServices = ['processor', 'ops', 'audit', 'console'] as const
export type InternalService = typeof internalServices[number]

/** 24 random bytes are 32 characters of base64url; shorter tokens are refused where they are set. */
export const internalTokenLengthMin = 32
/** A header longer than this is refused without being hashed. */
export const internalTokenLengthMax = 256

export class InternalServicesError extends Error {
  readonly code = 'internal_services_invalid'
}

/** A fresh token: 32 random bytes, base64url (43 characters). */
export function newInternalToken (): string {
  return randomBytes(32).toString('base64url')
}

/** The hex SHA-256 digest a node is given for a token. */
export function internalTokenDigest (token: string): string {
  return hash('sha256', token, 'hex')
}

const digestPattern = /^[0-9a-f]{64}$/

/**
 * The node's setting for a set of tokens: `processor:<sha256 hex>,ops:<hex>,…`. A service may be
 * listed more than once (two tokens in force while one replaces the other).
 */
export function formatInternalServices (tokens: ReadonlyArray<{ service: InternalService, token: string }>): string {
  return tokens.map(({ service, token }) => {
    if (token.length < internalTokenLengthMin || token.length > internalTokenLengthMax) {
      throw new InternalServicesError(`the ${service} token must be ${internalTokenLengthMin}..${internalTokenLengthMax} characters`)
    }
    return `${service}:${internalTokenDigest(token)}`
  }).join(',')
}

/**
 * Digest → service, from the node's setting. Refuses (InternalServicesError, naming the entry by
 * position only: it holds no secret, but the message should not invite pasting one) an empty
 * setting, an unknown service, a malformed digest, or one digest listed twice.
 */
export function parseInternalServices (text: string): Map<string, InternalService> {
  const byDigest = new Map<string, InternalService>()
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  if (entries.length === 0) throw new InternalServicesError('no service credential is listed')
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(':')
    const service = entry.slice(0, colon)
    const digest = entry.slice(colon + 1).toLowerCase()
    if (colon < 1 || !(internalServices as readonly string[]).includes(service)) {
      throw new InternalServicesError(`entry ${index + 1}: the service must be one of ${internalServices.join(', ')}`)
    }
    if (!digestPattern.test(digest)) throw new InternalServicesError(`entry ${index + 1}: not a hex SHA-256 digest`)
    if (byDigest.has(digest)) throw new InternalServicesError(`entry ${index + 1}: a digest listed twice`)
    byDigest.set(digest, service as InternalService)
  })
  return byDigest
}

/** One fresh token per service: what a stack runner makes at start (and gives each caller its own). */
export function newInternalTokens (): Record<InternalService, string> {
  return Object.fromEntries(internalServices.map((service) => [service, newInternalToken()])) as Record<InternalService, string>
}

/** The node's RINGPAY_INTERNAL_SERVICES for one token per service. */
export function internalServicesSetting (tokens: Readonly<Record<InternalService, string>>): string {
  return formatInternalServices(internalServices.map((service) => ({ service, token: tokens[service] })))
}
