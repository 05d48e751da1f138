// Retry delays after a failed publish: exponential, capped, with "equal jitter" (half fixed, half
// random) so that nodes retrying against one recovering broker spread out, yet a delay is never
// near zero (no hot loop while Kafka is down) and never above the cap (bounded time to notice that
// Kafka is back).

import assert from 'node:assert/strict'

/** Attempts past this do not grow the delay any further (2^30 already exceeds any sane cap). */
const exponentAttemptsMax = 30

/**
 * Delay before retry number `attempt` (0 = the first retry): within
 * [ceiling / 2, ceiling] where ceiling = min(maxMs, baseMs * 2^attempt).
 */
export function backoffDelayMs (attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  assert.ok(Number.isSafeInteger(attempt) && attempt >= 0, 'attempt must be a non-negative integer')
  assert.ok(baseMs > 0 && baseMs <= maxMs, 'backoff needs 0 < baseMs <= maxMs')
  const ceilingMs = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, exponentAttemptsMax))
  const r = random()
  assert.ok(r >= 0 && r < 1, 'random() must be in [0, 1)')
  return Math.round(ceilingMs / 2 + r * (ceilingMs / 2))
}
