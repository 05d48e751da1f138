// The eight-bytes-at-a-time CRC-32C must agree with kafkajs' byte loop and with the standard
// check value, at every length and alignment (the batch kafkajs checksums is a view into a
// larger buffer, so offsets are arbitrary).

import t from 'tap'
import { crc32c } from '../crc32c.ts'
import { kafkajsCrc32c } from '../kafkajs-fast-encoding.ts'

t.equal(crc32c(Buffer.from('123456789')), 0xe3069283, 'the CRC-32C check value')
t.equal(crc32c(Buffer.alloc(0)), 0, 'empty input')

t.test('every length 0..300 at every alignment 0..7 matches kafkajs', async (t) => {
  const backing = Buffer.alloc(400)
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 131 + 17) % 256
  let mismatches = 0
  for (let offset = 0; offset < 8; offset++) {
    for (let length = 0; length <= 300; length++) {
      const view = backing.subarray(offset, offset + length)
      if (crc32c(view) !== kafkajsCrc32c(view)) mismatches++
    }
  }
  t.equal(mismatches, 0)
})

t.test('a large buffer with all byte values matches kafkajs', async (t) => {
  const bytes = Buffer.alloc(1 << 16)
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i ^ (i >>> 8)) & 0xff
  t.equal(crc32c(bytes), kafkajsCrc32c(bytes))
})
