// Plugs two faster encoders into kafkajs' produce path: kafka-record-encoder.ts (one record in
// one buffer) and crc32c.ts (the record batch checksum, eight bytes at a time). kafkajs 2.2.4 (no
// release since February 2023, pinned in package-lock) loads its produce request module lazily,
// on the first produce, and that module takes both from the CommonJS module cache. Replacing the
// cached exports before then makes every produce request use ours. Record inputs the fast encoder
// does not cover go to kafkajs' original, so behaviour is unchanged; the bytes are identical
// (lib/test/kafka-record-encoder.test.ts, lib/test/crc32c.test.ts). Imported for its effect by
// kafka-event-bus.ts; installed once per process.

import { createRequire } from 'node:module'
import { crc32c } from './crc32c.ts'
import { encodeKafkaRecord, isFastRecordInput, type KafkaRecordInput } from './kafka-record-encoder.ts'

const require = createRequire(import.meta.url)
const recordModulePath = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js')
const crc32cModulePath = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js')
const produceRequestPath = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js')
const recordBatchPath = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js')

/** What kafkajs' RecordBatch needs of an encoded record (it checks `buf`, copies `buffer`). */
class EncodedRecord {
  readonly buf: Buffer
  constructor (buf: Buffer) { this.buf = buf }
  get buffer (): Buffer { return this.buf }
}

type RecordEncoder = (input: KafkaRecordInput) => { buf: Buffer, buffer: Buffer }

/** kafkajs' own record encoder, for inputs the fast one leaves alone (and for the tests). */
export const kafkajsRecordEncoder = require(recordModulePath) as RecordEncoder
/** kafkajs' own checksum (for the tests). */
export const kafkajsCrc32c = require(crc32cModulePath) as (bytes: Buffer) => number

export function fastRecordEncoder (input: KafkaRecordInput): { buf: Buffer, buffer: Buffer } {
  return isFastRecordInput(input) ? new EncodedRecord(encodeKafkaRecord(input)) : kafkajsRecordEncoder(input)
}

/**
 * 'installed': produce requests use the fast encoders. 'too-late': kafkajs had already loaded its
 * produce request or record batch module (bound to the originals) before this module ran; still
 * correct, only slower.
 */
export const fastEncodingState: 'installed' | 'too-late' = (() => {
  if (require.cache[produceRequestPath] !== undefined || require.cache[recordBatchPath] !== undefined) return 'too-late'
  const record = require.cache[recordModulePath]
  const checksum = require.cache[crc32cModulePath]
  if (record === undefined || checksum === undefined) return 'too-late'
  record.exports = fastRecordEncoder
  checksum.exports = crc32c
  return 'installed'
})()
