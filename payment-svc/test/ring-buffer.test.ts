import t from 'tap'
import { RingBuffer } from '../ring-buffer.ts'

t.test('FIFO across wrap-around, bounded', (t) => {
  const ring = new RingBuffer<number>(4)
  t.ok(ring.push(1) && ring.push(2) && ring.push(3) && ring.push(4))
  t.notOk(ring.push(5), 'full ring refuses')
  t.same(ring.shiftMany(3), [1, 2, 3])
  t.ok(ring.push(5) && ring.push(6) && ring.push(7))
  t.notOk(ring.push(8))
  t.equal(ring.size, 4)
  t.same(ring.shiftMany(10), [4, 5, 6, 7])
  t.equal(ring.size, 0)
  t.same(ring.shiftMany(1), [])
  t.end()
})

t.test('capacity must be a power of two', (t) => {
  t.throws(() => new RingBuffer(6))
  t.throws(() => new RingBuffer(0))
  t.end()
})
