// The per-PSP circuit breaker (issue #16): when it opens, what it lets through, how it closes.

import t from 'tap'
import { CircuitBreaker, defaultBreakerLimits, type BreakerLimits } from '../psp/breaker.ts'

const limits: BreakerLimits = { ...defaultBreakerLimits, windowMs: 10_000, bucketMs: 1_000, callsMin: 10, errorRateMax: 0.5, consecutiveFailuresMax: 5, slowCallMs: 1_000, openMs: 2_000, probesMax: 1 }

function clocked (over: Partial<BreakerLimits> = {}): { breaker: CircuitBreaker, clock: { ms: number }, states: string[] } {
  const clock = { ms: 1_000_000 }
  const states: string[] = []
  const breaker = new CircuitBreaker({ ...limits, ...over }, { now: () => clock.ms, onChange: (s) => states.push(s) })
  return { breaker, clock, states }
}

t.test('opens at the error rate over callsMin calls in the window, not before', async (t) => {
  const { breaker } = clocked({ consecutiveFailuresMax: 100 })
  // Alternating ok/failed: 50 %, but only once 10 calls are in the window does it count.
  for (let i = 0; i < 9; i++) breaker.record(i % 2 === 0, 10)
  t.equal(breaker.state, 'closed', '9 calls: below callsMin')
  breaker.record(true, 10)
  t.equal(breaker.state, 'open', '10 calls, 5 failed: opens')
  t.notOk(breaker.tryAcquire(), 'open: nothing goes')
})

t.test('failures older than the window are forgotten', async (t) => {
  const { breaker, clock } = clocked({ consecutiveFailuresMax: 100 })
  for (let i = 0; i < 4; i++) breaker.record(true, 10)
  clock.ms += 11_000
  for (let i = 0; i < 9; i++) breaker.record(false, 10)
  breaker.record(true, 10)
  t.equal(breaker.state, 'closed', '1 failure in the last 10 calls of the window')
})

t.test('consecutive failures and slow calls open it', async (t) => {
  const a = clocked()
  for (let i = 0; i < 5; i++) a.breaker.record(true, 10)
  t.equal(a.breaker.state, 'open', '5 failures in a row')
  const b = clocked()
  for (let i = 0; i < 5; i++) b.breaker.record(false, 1_500)
  t.equal(b.breaker.state, 'open', '5 answers slower than slowCallMs count as failures')
})

t.test('after openMs one probe at a time; its success closes, its failure reopens', async (t) => {
  const { breaker, clock, states } = clocked()
  for (let i = 0; i < 5; i++) breaker.record(true, 10)
  t.equal(breaker.retryAtMs, clock.ms + 2_000)
  clock.ms += 2_000
  t.equal(breaker.state, 'half_open')
  t.ok(breaker.routable, 'half-open: routing may send a payment (so that one probes)')
  t.ok(breaker.tryAcquire(), 'the probe')
  t.notOk(breaker.tryAcquire(), 'a second call while the probe is out')
  breaker.record(true, 10)
  t.equal(breaker.state, 'open', 'the probe failed: open again')
  t.notOk(breaker.routable)
  clock.ms += 2_000
  t.ok(breaker.tryAcquire())
  breaker.record(false, 10)
  t.equal(breaker.state, 'closed', 'the probe succeeded: closed')
  t.same(states, ['open', 'half_open', 'open', 'half_open', 'closed'])
  for (let i = 0; i < 4; i++) breaker.record(true, 10)
  t.equal(breaker.state, 'closed', 'closing forgot the failures before it')
})

t.test('a released probe slot can be taken again', async (t) => {
  const { breaker, clock } = clocked()
  for (let i = 0; i < 5; i++) breaker.record(true, 10)
  clock.ms += 2_000
  t.ok(breaker.tryAcquire())
  breaker.release()
  t.ok(breaker.tryAcquire())
})

t.test('inconsistent limits are refused', async (t) => {
  t.throws(() => new CircuitBreaker({ ...limits, windowMs: 1_500 }), RangeError)
  t.throws(() => new CircuitBreaker({ ...limits, errorRateMax: 0 }), RangeError)
})
