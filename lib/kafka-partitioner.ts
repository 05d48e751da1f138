// The Java client's default partitioner for keyed messages — toPositive(murmur2(key bytes)) mod
// the topic's partition count — computed with 32-bit integer math. kafkajs' own DefaultPartitioner
// gives the same partitions but emulates 64-bit longs and filters the partition list for every
// message, which made it a tenth of the relay's CPU. Keyless messages go to kafkajs' partitioner.

import { Partitioners, type ICustomPartitioner } from 'kafkajs'

const seed = 0x9747b28c
const m = 0x5bd1e995
const r = 24

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int. */
export function murmur2 (data: Uint8Array): number {
  const length = data.length
  let h = seed ^ length
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> r
    k = Math.imul(k, m)
    h = Math.imul(h, m)
    h ^= k
  }
  const tail = length & 3
  const base = length & ~3
  if (tail === 3) h ^= data[base + 2]! << 16
  if (tail >= 2) h ^= data[base + 1]! << 8
  if (tail >= 1) {
    h ^= data[base]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** The partition the Java client (and kafkajs) picks for `key` among `partitionCount`. */
export function partitionForKey (key: string | Uint8Array, partitionCount: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  return (murmur2(bytes) & 0x7fffffff) % partitionCount
}

export const keyedPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner()
  return (args) => {
    const { message, partitionMetadata } = args
    if (message.partition !== undefined && message.partition !== null) return message.partition
    if (message.key === undefined || message.key === null) return fallback(args)
    return partitionForKey(message.key, partitionMetadata.length)
  }
}
