import t from 'tap'
import { backoffDelayMs } from '../../lib/backoff.ts'
import { Semaphore } from '../semaphore.ts'

t.test('backoff grows, is capped, and is jittered within its ceiling', (t) => {
  const policy = { baseDelayMs: 100, delayMsMax: 5_000 }
  t.equal(backoffDelayMs(policy, 0, () => 0.999999), 99)
  t.equal(backoffDelayMs(policy, 3, () => 0.999999), 799)
  t.equal(backoffDelayMs(policy, 40, () => 0.999999), 4999, 'capped')
  t.equal(backoffDelayMs(policy, 5, () => 0), 0, 'full jitter reaches zero')
  t.end()
})

t.test('the semaphore never runs more than its limit', async (t) => {
  const semaphore = new Semaphore(3)
  let running = 0
  let peak = 0
  await Promise.all(Array.from({ length: 20 }, () => semaphore.run(async () => {
    running++
    peak = Math.max(peak, running)
    await new Promise((resolve) => setImmediate(resolve))
    running--
  })))
  t.equal(peak, 3)
  t.equal(semaphore.active, 0)
})
