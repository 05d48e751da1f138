// The handoff cache: a bounded, contiguous run of the change log's newest values.

import { AssertionError } from 'node:assert'
import t from 'tap'
import { HandoffCache, packEvents, packedTransferList } from '../handoff.ts'

const value = (sequence: number, length = 4): Uint8Array => new Uint8Array(length).fill(sequence % 256)
const values = (from: number, count: number, length = 4): Uint8Array[] => Array.from({ length: count }, (_, i) => value(from + i, length))

t.test('packing keeps every value, in order, in one transferable buffer', async (t) => {
  const packed = packEvents(7, [value(7, 3), value(8, 0), value(9, 5)], 100)!
  t.equal(packed.firstSequence, 7)
  t.same([...packed.lengths], [3, 0, 5])
  t.equal(packed.bytes.byteLength, 8)
  t.equal(packedTransferList(packed).length, 2)
  t.equal(packEvents(1, values(1, 3, 40), 100), undefined, 'over the byte bound: not packed')
})

t.test('contiguous chunks extend the cache; entries read back byte for byte', async (t) => {
  const cache = new HandoffCache({ eventsMax: 100, bytesMax: 1_000 })
  cache.offer(packEvents(5, values(5, 3), 1_000)!)
  cache.offer(packEvents(8, values(8, 2), 1_000)!)
  t.equal(cache.startSequence, 5)
  t.equal(cache.endSequence, 10)
  t.equal(cache.bytes, 20)
  for (let s = 5; s < 10; s++) t.same(cache.at(s), value(s))
  t.throws(() => cache.at(10), AssertionError, 'past the end is a bug')
  t.throws(() => cache.at(4), AssertionError, 'before the start is a bug')
})

t.test('a gap or an overlap is dropped, and counted', async (t) => {
  const cache = new HandoffCache({ eventsMax: 100, bytesMax: 1_000 })
  cache.offer(packEvents(1, values(1, 2), 1_000)!)
  cache.offer(packEvents(4, values(4, 1), 1_000)!)
  cache.offer(packEvents(2, values(2, 1), 1_000)!)
  t.equal(cache.dropped, 2)
  t.equal(cache.endSequence, 3, 'the cache still ends where it did')
})

t.test('the bounds hold: events and bytes', async (t) => {
  const byEvents = new HandoffCache({ eventsMax: 4, bytesMax: 1_000 })
  byEvents.offer(packEvents(1, values(1, 3), 1_000)!)
  byEvents.offer(packEvents(4, values(4, 2), 1_000)!)
  t.equal(byEvents.size, 3)
  t.equal(byEvents.dropped, 1)
  const byBytes = new HandoffCache({ eventsMax: 100, bytesMax: 10 })
  byBytes.offer(packEvents(1, values(1, 2), 1_000)!)
  byBytes.offer(packEvents(3, values(3, 1), 1_000)!)
  t.equal(byBytes.bytes, 8)
  t.equal(byBytes.dropped, 1)
})

t.test('dropBelow forgets published entries; once empty, a new run may start anywhere', async (t) => {
  const cache = new HandoffCache({ eventsMax: 100, bytesMax: 1_000 })
  cache.offer(packEvents(1, values(1, 5), 1_000)!)
  cache.dropBelow(3)
  t.equal(cache.startSequence, 3)
  t.equal(cache.size, 3)
  t.equal(cache.bytes, 12)
  cache.dropBelow(100)
  t.equal(cache.size, 0)
  t.equal(cache.bytes, 0)
  cache.offer(packEvents(42, values(42, 1), 1_000)!)
  t.equal(cache.startSequence, 42, 'a new run after a gap (the relay reads the gap from disk)')
  t.same(cache.at(42), value(42))
})

t.test('a long-running cache compacts its deque', async (t) => {
  const cache = new HandoffCache({ eventsMax: 10_000, bytesMax: 1_000_000 })
  let next = 1
  for (let round = 0; round < 50; round++) {
    cache.offer(packEvents(next, values(next, 100), 1_000_000)!)
    next += 100
    cache.dropBelow(next - 10)
  }
  t.equal(cache.size, 10)
  t.same(cache.at(next - 1), value(next - 1))
})
