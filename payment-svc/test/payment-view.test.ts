import t from 'tap'
import { isoTime } from '../payment-view.ts'

t.test('isoTime is Date#toISOString', async (t) => {
  const cases = [0, 1, 999, 1000, 1001, 1_763_919_000_123, 1_763_919_000_999, 1_763_919_001_000, 253_402_300_799_999,
    253_402_300_800_000, -1, -1000, -1001, 8.64e15, 1_763_919_000_000.5]
  let x = 12345
  for (let i = 0; i < 20_000; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0
    cases.push(1_763_919_000_000 + x % 5_000_000, x * 4096 + (x % 1000))
  }
  let mismatches = 0
  for (const ms of cases) if (isoTime(ms) !== new Date(ms).toISOString()) mismatches++
  t.equal(mismatches, 0)
})
