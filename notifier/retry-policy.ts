// When a failed delivery is tried again, when it is given up, when an endpoint is disabled, and
// which due deliveries may start now (pure; the dispatcher and its tests use these).

import { backoffDelayMs } from '../lib/backoff.ts'
import type { NotifierLimits } from './limits.ts'

export type AfterFailure = { kind: 'retry', nextAttemptAtMs: number } | { kind: 'give_up' }

/**
 * After failed attempt number `attempts` (1 = the first): capped exponential backoff with full
 * jitter (many deliveries that failed together, an endpoint's outage, do not come back in
 * lockstep), but never less than a tenth of the cap's step so a retry is not immediate; given up
 * once the next try would fall past the delivery's retry window.
 */
export function afterFailure (attempts: number, nowMs: number, giveUpAtMs: number,
  limits: Pick<NotifierLimits, 'retryBaseDelayMs' | 'retryDelayMsMax'>, random: () => number = Math.random): AfterFailure {
  const policy = { baseDelayMs: limits.retryBaseDelayMs, delayMsMax: limits.retryDelayMsMax }
  const ceilingMs = Math.min(limits.retryDelayMsMax, limits.retryBaseDelayMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30))
  const delayMs = Math.max(Math.ceil(ceilingMs / 10), backoffDelayMs(policy, Math.max(attempts - 1, 0), random))
  const nextAttemptAtMs = nowMs + delayMs
  if (nextAttemptAtMs > giveUpAtMs) return { kind: 'give_up' }
  return { kind: 'retry', nextAttemptAtMs }
}

/** An endpoint is disabled once it failed `disableAfterFailuresMin` attempts in a row over at least `disableAfterFailingMs`. */
export function shouldDisable (consecutiveFailures: number, failingSinceMs: number, nowMs: number,
  limits: Pick<NotifierLimits, 'disableAfterFailuresMin' | 'disableAfterFailingMs'>): boolean {
  return consecutiveFailures >= limits.disableAfterFailuresMin && nowMs - failingSinceMs >= limits.disableAfterFailingMs
}

export interface Candidate {
  deliveryId: string
  endpointId: string
}

/**
 * Of the due deliveries (oldest due first), those that may start now: at most
 * `deliveriesInFlightMax` in flight in all and `deliveriesInFlightPerEndpointMax` per endpoint, so
 * one slow endpoint takes only its share of the slots and never holds back another's deliveries.
 */
export function pickStartable<C extends Candidate> (due: readonly C[], inFlightByEndpoint: ReadonlyMap<string, number>, inFlightTotal: number,
  limits: Pick<NotifierLimits, 'deliveriesInFlightMax' | 'deliveriesInFlightPerEndpointMax'>): C[] {
  const picked: C[] = []
  const taken = new Map<string, number>()
  let total = inFlightTotal
  for (const candidate of due) {
    if (total >= limits.deliveriesInFlightMax) break
    const current = (inFlightByEndpoint.get(candidate.endpointId) ?? 0) + (taken.get(candidate.endpointId) ?? 0)
    if (current >= limits.deliveriesInFlightPerEndpointMax) continue
    taken.set(candidate.endpointId, (taken.get(candidate.endpointId) ?? 0) + 1)
    picked.push(candidate)
    total++
  }
  return picked
}
