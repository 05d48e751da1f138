import t from 'tap'
import { backoffDelayMs } from '../backoff.ts'

t.test('delays grow exponentially within [ceiling/2, ceiling] and stop at the cap', async (t) => {
  const baseMs = 100
  const maxMs = 5_000
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(maxMs, baseMs * 2 ** attempt)
    t.equal(backoffDelayMs(attempt, baseMs, maxMs, () => 0), ceiling / 2, `attempt ${attempt}: lowest`)
    const highest = backoffDelayMs(attempt, baseMs, maxMs, () => 0.999999)
    t.ok(highest <= ceiling && highest >= ceiling * 0.99, `attempt ${attempt}: highest ${highest} ≤ ${ceiling}`)
  }
})

t.test('jitter spreads the delays and never reaches zero or the cap + 1', async (t) => {
  const seen = new Set<number>()
  for (let i = 0; i < 1_000; i++) {
    const delay = backoffDelayMs(10, 100, 5_000)
    t.ok(delay >= 2_500 && delay <= 5_000)
    seen.add(delay)
  }
  t.ok(seen.size > 100, 'delays are spread out')
})

t.test('huge attempt numbers stay finite', async (t) => {
  t.equal(backoffDelayMs(1_000_000, 100, 5_000, () => 0), 2_500)
})

t.test('bad arguments are bugs', async (t) => {
  t.throws(() => backoffDelayMs(-1, 100, 5_000))
  t.throws(() => backoffDelayMs(0, 0, 5_000))
  t.throws(() => backoffDelayMs(0, 200, 100))
  t.throws(() => backoffDelayMs(0, 100, 5_000, () => 1))
})
