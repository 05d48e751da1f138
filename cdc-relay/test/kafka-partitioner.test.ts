// Our fast partitioner must pick exactly the partition kafkajs' DefaultPartitioner (= the Java
// client's) picks, or one checkout id's events could land in two partitions across a client change.

import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { Partitioners } from 'kafkajs'
import t from 'tap'
import { keyedPartitioner, murmur2, partitionForKey } from '../../lib/kafka-partitioner.ts'

const require = createRequire(import.meta.url)
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer | string) => number

function partitionMetadata (count: number) {
  return Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }))
}

t.test('murmur2 matches kafkajs (and so the Java client) bit for bit', async (t) => {
  const keys: Buffer[] = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('ab'), Buffer.from('abc'), Buffer.from('abcd'), Buffer.from('héllo-€-✓')]
  for (let i = 0; i < 2_000; i++) keys.push(randomBytes(i % 97))
  let mismatches = 0
  for (const key of keys) if (murmur2(key) !== kafkajsMurmur2(key)) mismatches++
  t.equal(mismatches, 0, `${keys.length} keys`)
  // Known values from the Java client's Utils.murmur2 (kafka-clients test vectors).
  t.equal(murmur2(Buffer.from('21')), -973932308)
  t.equal(murmur2(Buffer.from('foobar')), -790332482)
})

t.test('the partitioner agrees with kafkajs DefaultPartitioner for keyed messages', async (t) => {
  const ours = keyedPartitioner()
  const theirs = Partitioners.DefaultPartitioner()
  let mismatches = 0
  for (const count of [1, 7, 8, 64, 1000]) {
    const meta = partitionMetadata(count)
    for (let i = 0; i < 500; i++) {
      const key = `co-${randomBytes(8).toString('hex')}-${i}`
      const message = { key, value: 'x' }
      const a = ours({ topic: 't', partitionMetadata: meta, message })
      const b = theirs({ topic: 't', partitionMetadata: meta, message })
      if (a !== b || a !== partitionForKey(key, count)) mismatches++
    }
  }
  t.equal(mismatches, 0)
  t.equal(ours({ topic: 't', partitionMetadata: partitionMetadata(8), message: { key: 'k', value: 'x', partition: 5 } }), 5, 'an explicit partition wins')
  const keyless = ours({ topic: 't', partitionMetadata: partitionMetadata(8), message: { value: 'x' } })
  t.ok(keyless >= 0 && keyless < 8, 'keyless messages still get a partition')
})
