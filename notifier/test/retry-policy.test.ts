// The queue's pure rules: backoff with jitter inside a retry window, the disable threshold, and
// the in-flight bounds that keep one slow endpoint from taking every slot.

import t from 'tap'
import { defaultNotifierLimits, limitsFromEnv } from '../limits.ts'
import { afterFailure, pickStartable, shouldDisable } from '../retry-policy.ts'

const limits = { retryBaseDelayMs: 1_000, retryDelayMsMax: 60_000 }

t.test('backoff grows exponentially to its cap, with jitter, never immediate', (t) => {
  const at = (attempts: number, random: number): number => {
    const next = afterFailure(attempts, 0, Number.MAX_SAFE_INTEGER, limits, () => random)
    if (next.kind !== 'retry') throw new Error('expected a retry')
    return next.nextAttemptAtMs
  }
  t.equal(at(1, 0.999), 999, 'first retry within the base delay')
  t.equal(at(2, 0.999), 1_998)
  t.equal(at(3, 0.999), 3_996)
  t.equal(at(20, 0.999), 59_940, 'capped')
  t.equal(at(20, 0), 6_000, 'jitter floor: a tenth of the ceiling')
  t.equal(at(1, 0), 100)
  const spread = new Set(Array.from({ length: 50 }, () => at(5, Math.random())))
  t.ok(spread.size > 10, 'jitter spreads retries')
  t.end()
})

t.test('given up once the next try would fall past the retry window', (t) => {
  t.same(afterFailure(1, 10_000, 10_050, limits, () => 0.999), { kind: 'give_up' })
  t.same(afterFailure(1, 10_000, 20_000, limits, () => 0.5), { kind: 'retry', nextAttemptAtMs: 10_500 })
  // The defaults: 3 days of retries, hours apart at the end.
  let attempts = 0
  let now = 0
  for (;;) {
    const next = afterFailure(attempts + 1, now, defaultNotifierLimits.retryWindowMs, defaultNotifierLimits, () => 0.5)
    attempts++
    if (next.kind === 'give_up') break
    now = next.nextAttemptAtMs
  }
  t.ok(attempts > 20 && attempts < 200, `${attempts} attempts over three days`)
  t.ok(now <= defaultNotifierLimits.retryWindowMs)
  t.end()
})

t.test('an endpoint is disabled after enough failures over long enough', (t) => {
  const l = { disableAfterFailuresMin: 5, disableAfterFailingMs: 60_000 }
  t.notOk(shouldDisable(4, 0, 120_000, l), 'too few failures')
  t.notOk(shouldDisable(50, 100_000, 120_000, l), 'not failing long enough')
  t.ok(shouldDisable(5, 0, 60_000, l))
  t.end()
})

t.test('in-flight bounds: per endpoint and in all', (t) => {
  const due = [
    ...Array.from({ length: 10 }, (_, i) => ({ deliveryId: `a${i}`, endpointId: 'slow' })),
    { deliveryId: 'b0', endpointId: 'fast' }, { deliveryId: 'c0', endpointId: 'other' },
  ]
  const l = { deliveriesInFlightMax: 8, deliveriesInFlightPerEndpointMax: 3 }
  t.same(pickStartable(due, new Map(), 0, l).map((d) => d.deliveryId), ['a0', 'a1', 'a2', 'b0', 'c0'], 'the slow endpoint takes only its share')
  t.same(pickStartable(due, new Map([['slow', 3]]), 3, l).map((d) => d.deliveryId), ['b0', 'c0'], 'a slow endpoint at its cap holds nothing back')
  t.same(pickStartable(due, new Map([['slow', 1]]), 7, l).map((d) => d.deliveryId), ['a0'], 'the total bound')
  t.same(pickStartable(due, new Map(), 8, l), [], 'nothing past the total')
  t.end()
})

t.test('limits from env are checked', (t) => {
  t.equal(limitsFromEnv({ NOTIFIER_RETRY_BASE_DELAY_MS: '50' }).retryBaseDelayMs, 50)
  t.throws(() => limitsFromEnv({ NOTIFIER_RETRY_BASE_DELAY_MS: 'x' }), { code: 'notifier_config_invalid' })
  t.throws(() => limitsFromEnv({ NOTIFIER_LEASE_MS: '100' }), { code: 'notifier_config_invalid' }, 'a lease shorter than an attempt')
  t.throws(() => limitsFromEnv({ NOTIFIER_DELIVERIES_IN_FLIGHT_PER_ENDPOINT_MAX: '1000' }), { code: 'notifier_config_invalid' })
  t.end()
})
