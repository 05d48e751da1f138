// Who is calling the internal API, and whether that service may do what it asks (#17 part 2,
// SECURITY.md). The caller's own token (lib/internal-credentials.ts) names the service; nothing
// in the request body does. nginx passes the token through and adds none, so the check here is
// end to end: a process that reaches nginx's internal listener or a node's port without a token
// gets 401, a service asking for what is not its job gets 403.
//
// Per request: one Map lookup for a token seen before, else one SHA-256 and a lookup by digest.
// Synchronous, no allocation beyond the digest; the processors send the same token every time.

import type { IncomingMessage } from 'node:http'
import { internalTokenDigest, internalTokenHeader, internalTokenLengthMax, type InternalService } from '../lib/internal-credentials.ts'
import type { PaymentStatus } from '../lib/payment-codec.ts'
import { ProblemError } from './errors.ts'

export type InternalAction =
  | { kind: 'read' }
  | { kind: 'transition', to: PaymentStatus }
  | { kind: 'reload_keys' }
  /** A refund's outcome (succeeded or failed): only the processor, which holds the PSP's answer. */
  | { kind: 'refund_transition' }
  /** Giving back a canceled payment's charge the PSP took anyway: the processor, which found it. */
  | { kind: 'refund_canceled_charge' }

interface ServicePolicy {
  read: boolean
  transitionsTo: ReadonlySet<PaymentStatus>
  reloadKeys: boolean
  refundTransitions: boolean
  /** Giving back a canceled payment's charge: the processor, which found it; the console's operators, resolving such a flag. */
  refundCanceledCharge: boolean
}

/**
 * What each service may do. Only the processor, which holds the PSP's answer, may record an
 * outcome a merchant is paid on (`succeeded`) or that sends the customer elsewhere
 * (`requires_action`) or that holds money for the merchant to capture (`requires_capture`); it may also cancel (the expiry of payments nobody completes,
 * processor/expiry.ts); operators may claim, fail or cancel a payment (and the test suite acts as
 * an operator); readers read. The console resolves a flagged payment (console/flagged.ts): it may
 * accept the PSP's outcome (succeeded or failed, naming the PSP's charge; the node still checks
 * the move) or cancel, or give back the charge of a canceled payment the PSP took anyway (the
 * refund the processor makes when it finds one); it checks the operator's role and audits the outcome.
 */
export const internalPolicy: Readonly<Record<InternalService, ServicePolicy>> = {
  processor: { read: true, transitionsTo: new Set(['processing', 'succeeded', 'failed', 'requires_action', 'requires_capture', 'canceled']), reloadKeys: false, refundTransitions: true, refundCanceledCharge: true },
  ops: { read: true, transitionsTo: new Set(['processing', 'failed', 'canceled']), reloadKeys: true, refundTransitions: false, refundCanceledCharge: false },
  audit: { read: true, transitionsTo: new Set(), reloadKeys: false, refundTransitions: false, refundCanceledCharge: false },
  console: { read: true, transitionsTo: new Set(['succeeded', 'failed', 'canceled']), reloadKeys: false, refundTransitions: false, refundCanceledCharge: true },
}

export class InternalAuthenticator {
  readonly #serviceByDigest: ReadonlyMap<string, InternalService>
  /** Tokens already resolved: only valid ones, so at most one entry per configured digest. */
  readonly #serviceByToken = new Map<string, InternalService>()

  constructor (serviceByDigest: ReadonlyMap<string, InternalService>) {
    this.#serviceByDigest = serviceByDigest
  }

  /** The calling service, or 401 `internal_unauthorized` (missing, malformed or unknown token). */
  serviceOf (req: IncomingMessage): InternalService {
    const token = req.headers[internalTokenHeader]
    if (typeof token !== 'string' || token.length === 0 || token.length > internalTokenLengthMax) {
      throw new ProblemError('internal_unauthorized', { detail: 'no internal service credential' })
    }
    const known = this.#serviceByToken.get(token)
    if (known !== undefined) return known
    // Looking up the digest, not the token, leaks nothing useful through timing.
    const service = this.#serviceByDigest.get(internalTokenDigest(token))
    if (service === undefined) throw new ProblemError('internal_unauthorized', { detail: 'unknown internal service credential' })
    this.#serviceByToken.set(token, service)
    return service
  }

  /** The calling service, if it may do `action`; else 401 or 403 `internal_forbidden`. */
  require (req: IncomingMessage, action: InternalAction): InternalService {
    const service = this.serviceOf(req)
    requireAllowed(service, action)
    return service
  }
}

export function requireAllowed (service: InternalService, action: InternalAction): void {
  const policy = internalPolicy[service]
  const allowed = action.kind === 'read'
    ? policy.read
    : action.kind === 'reload_keys'
      ? policy.reloadKeys
      : action.kind === 'refund_transition' ? policy.refundTransitions
        : action.kind === 'refund_canceled_charge' ? policy.refundCanceledCharge : policy.transitionsTo.has(action.to)
  if (!allowed) {
    const what = action.kind === 'transition'
      ? `move a payment to ${action.to}`
      : action.kind === 'read' ? 'read payments' : action.kind === 'refund_transition' ? 'settle refunds'
        : action.kind === 'refund_canceled_charge' ? 'refund a canceled payment\'s charge' : 'reload the API keys'
    throw new ProblemError('internal_forbidden', { detail: `the ${service} service may not ${what}` })
  }
}

/**
 * The actor a transition is recorded with: the authenticated service, with what the caller says
 * about itself (the body's `actor`, e.g. `watchdog`) after a colon when it says something else.
 * The part before the first colon is always the service, so it cannot be forged; `webhook:` and
 * `api`, which the node writes itself, can never be produced here.
 */
export function recordedActor (service: InternalService, claimed: string): string {
  return claimed === '' || claimed === service ? service : `${service}:${claimed}`
}
