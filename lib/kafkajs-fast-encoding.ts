// Plugs faster encoders into kafkajs' produce path: kafka-record-encoder.ts (each record, and each
// partition's uncompressed record batch, in one buffer) and crc32c.ts (the batch checksum, eight
// bytes at a time). kafkajs 2.2.4 (no release since February 2023, pinned in package-lock) loads
// its produce request module lazily, on the first produce, and that module takes its encoders
// from the CommonJS module cache. Replacing the cached exports before then makes every produce
// request use ours. Record inputs the fast encoder does not cover, and compressed batches, go to
// kafkajs' originals, so behaviour is unchanged; the bytes are identical
// (lib/test/kafka-record-encoder.test.ts, lib/test/crc32c.test.ts). Imported for its effect by
// kafka-event-bus.ts; installed once per process.

import { createRequire } from 'node:module'
import { crc32c } from './crc32c.ts'
import { encodeKafkaRecord, encodeKafkaRecordBatch, isFastRecordInput, type KafkaRecordInput } from './kafka-record-encoder.ts'

const require = createRequire(import.meta.url)
const recordModulePath = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js')
const crc32cModulePath = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js')
const produceRequestPath = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js')
const recordBatchPath = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js')

/**
 * What kafkajs needs of an encoded record or record batch: it checks `buf`, copies `buffer`, and
 * the produce request asks a batch its `size()`.
 */
class Encoded {
  readonly buf: Buffer
  constructor (buf: Buffer) { this.buf = buf }
  get buffer (): Buffer { return this.buf }
  size (): number { return this.buf.length }
}

/** kafkajs' 64-bit integer (a BigInt wrapper); fromValue takes numbers, strings and Longs. */
interface KafkajsLong { value: bigint }
const Long = require('kafkajs/src/utils/long.js') as { fromValue: (value: unknown) => KafkajsLong, fromInt: (value: number) => KafkajsLong }
const compressionNone = 0
const transactionalAttribute = 16

interface RecordBatchArgs {
  compression?: number
  firstOffset?: unknown
  firstTimestamp?: unknown
  maxTimestamp?: unknown
  partitionLeaderEpoch?: number
  lastOffsetDelta?: number
  transactional?: boolean
  producerId?: unknown
  producerEpoch?: number
  firstSequence?: number
  records?: Array<{ buf: Buffer, buffer: Buffer }>
}
type RecordBatchEncoder = (args: RecordBatchArgs) => Promise<{ buf: Buffer, buffer: Buffer, size: () => number }>

type RecordEncoder = (input: KafkaRecordInput) => { buf: Buffer, buffer: Buffer }

/** kafkajs' own record encoder, for inputs the fast one leaves alone (and for the tests). */
export const kafkajsRecordEncoder = require(recordModulePath) as RecordEncoder
/** kafkajs' own checksum (for the tests). */
export const kafkajsCrc32c = require(crc32cModulePath) as (bytes: Buffer) => number

export function fastRecordEncoder (input: KafkaRecordInput): { buf: Buffer, buffer: Buffer } {
  return isFastRecordInput(input) ? new Encoded(encodeKafkaRecord(input)) : kafkajsRecordEncoder(input)
}

const kafkajsRecordBatchModule = require(recordBatchPath) as { RecordBatch: RecordBatchEncoder, MAGIC_BYTE: number }
/** kafkajs' own record batch encoder, for compressed batches (and for the tests). */
export const kafkajsRecordBatchEncoder = kafkajsRecordBatchModule.RecordBatch

/** kafkajs' RecordBatch, with the same defaults; compressed batches go to kafkajs' own. */
export async function fastRecordBatchEncoder (args: RecordBatchArgs): Promise<{ buf: Buffer, buffer: Buffer, size: () => number }> {
  const now = Date.now()
  const {
    compression = compressionNone, firstOffset = Long.fromInt(0), firstTimestamp = now, maxTimestamp = now,
    partitionLeaderEpoch = 0, lastOffsetDelta = 0, transactional = false, producerId = Long.fromValue(-1),
    producerEpoch = 0, firstSequence = 0, records = [],
  } = args
  if (compression !== compressionNone) return kafkajsRecordBatchEncoder(args)
  return new Encoded(encodeKafkaRecordBatch({
    firstOffset: Long.fromValue(firstOffset).value,
    partitionLeaderEpoch,
    attributes: transactional ? transactionalAttribute : 0,
    lastOffsetDelta,
    firstTimestamp: Long.fromValue(firstTimestamp).value,
    maxTimestamp: Long.fromValue(maxTimestamp).value,
    producerId: Long.fromValue(producerId).value,
    producerEpoch,
    firstSequence,
    records: records.map((record) => record.buffer),
  }, crc32c))
}

/**
 * 'installed': produce requests use the fast encoders. 'too-late': kafkajs had already loaded its
 * produce request module (bound to the originals) before this module ran; still correct, only
 * slower (createKafkaProducer logs it).
 */
export const fastEncodingState: 'installed' | 'too-late' = (() => {
  if (require.cache[produceRequestPath] !== undefined) return 'too-late'
  const record = require.cache[recordModulePath]
  const checksum = require.cache[crc32cModulePath]
  const batch = require.cache[recordBatchPath]
  if (record === undefined || checksum === undefined || batch === undefined) return 'too-late'
  record.exports = fastRecordEncoder
  checksum.exports = crc32c
  batch.exports = { ...kafkajsRecordBatchModule, RecordBatch: fastRecordBatchEncoder }
  return 'installed'
})()
