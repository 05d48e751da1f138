// The failed-key cap on its own: the window, the block, and bounded memory.

import t from 'tap'
import { FailedKeyLimiter } from '../failed-key-limiter.ts'

const limits = { failedKeyAttemptsMax: 3, failedKeyWindowMs: 10_000, failedKeyTrackedIpsMax: 4 }

t.test('an IP is blocked from its cap to the end of its window, and not before', (t) => {
  const l = new FailedKeyLimiter(limits)
  t.equal(l.blockedForS('a', 0), 0)
  t.equal(l.recordFailure('a', 0), 1)
  t.equal(l.recordFailure('a', 1_000), 2)
  t.equal(l.blockedForS('a', 1_000), 0, 'under the cap')
  t.equal(l.recordFailure('a', 2_000), 3)
  t.equal(l.blockedForS('a', 2_000), 8, 'blocked for the rest of the window, rounded up')
  t.equal(l.blockedForS('a', 9_001), 1)
  t.equal(l.blockedForS('b', 2_000), 0, 'other IPs are not')
  t.equal(l.blockedForS('a', 10_000), 0, 'free when the window ends')
  t.equal(l.trackedIps, 0, 'and forgotten')
  t.equal(l.recordFailure('a', 10_001), 1, 'a new window starts at the next failure')
  t.end()
})

t.test('at most failedKeyTrackedIpsMax IPs are tracked: the oldest window goes first', (t) => {
  const l = new FailedKeyLimiter(limits)
  for (const ip of ['a', 'b', 'c', 'd']) for (let i = 0; i < 3; i++) l.recordFailure(ip, 0)
  t.equal(l.trackedIps, 4)
  // 'a' starts a new window after its first one ended: it moves to the back.
  l.recordFailure('a', 10_000)
  l.recordFailure('e', 10_001)
  t.equal(l.trackedIps, 4, 'bounded')
  t.equal(l.blockedForS('b', 10_001), 0, 'b, the oldest window, was dropped')
  t.equal(l.blockedForS('c', 9_000), 1, 'c is still tracked and blocked')
  t.equal(l.recordFailure('a', 10_002), 2, 'a kept its new window')
  for (let i = 0; i < 10_000; i++) l.recordFailure(`x${i}`, 20_000 + i)
  t.equal(l.trackedIps, 4, 'a spray of addresses cannot grow it')
  t.end()
})
