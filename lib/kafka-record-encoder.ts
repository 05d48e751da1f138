// One Kafka record (RecordBatch v2 "Record", the format of every produce request since Kafka
// 0.11) encoded in one exactly sized buffer.
//
// Why it exists: kafkajs (frozen at 2.2.4) encodes each record through six growable encoders
// (one per record and per header), each starting as a zero-filled 512-byte Buffer, plus
// 64-bit varints through a Long library. On the relay's worker that was ~40 % of its CPU per
// published event. This encoder computes the size first and writes once. kafkajs-fast-encoding.ts
// plugs it into kafkajs; the test proves it byte-identical to kafkajs' own encoder.
//
//   Record => Length:varint Attributes:int8 TimestampDelta:varlong OffsetDelta:varint
//             Key:varint-bytes Value:varint-bytes Headers:[HeaderKey:varint-string HeaderValue:varint-bytes]
// varint/varlong are zigzag-encoded; a null key, value or header value is length -1.

import assert from 'node:assert/strict'
import { varintSize, writeVarint } from './varint.ts'

/** What one record holds; header values may repeat a key (an array). */
export interface KafkaRecordInput {
  offsetDelta: number
  timestampDelta: number
  key: string | Buffer | null | undefined
  value: string | Buffer | null | undefined
  headers: Readonly<Record<string, string | Buffer | ReadonlyArray<string | Buffer>>> | undefined
}

/** |timestampDelta| below this keeps its zigzag form (about 2|v|) a safe integer. */
const varlongMagnitudeLimit = 2 ** 52
/** Header names are few and fixed per producer: their bytes are cached, up to this many names. */
const headerNameCacheEntriesMax = 256
const headerNameCache = new Map<string, Buffer>()

function zigzag32 (value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0
}

function zigzag64 (value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1
}

function headerName (name: string): Buffer {
  let bytes = headerNameCache.get(name)
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8')
    if (headerNameCache.size < headerNameCacheEntriesMax) headerNameCache.set(name, bytes)
  }
  return bytes
}

/** Byte length of a nullable string or Buffer, -1 for null. */
function fieldLength (field: string | Buffer | null | undefined): number {
  if (field === null || field === undefined) return -1
  return typeof field === 'string' ? Buffer.byteLength(field, 'utf8') : field.length
}

function writeField (buf: Buffer, offset: number, field: string | Buffer | null | undefined, length: number): number {
  offset = writeVarint(buf, offset, zigzag32(length))
  if (length <= 0) return offset
  if (typeof field === 'string') return offset + buf.write(field, offset, length, 'utf8')
  ;(field as Buffer).copy(buf, offset)
  return offset + length
}

function fieldSize (length: number): number {
  return varintSize(zigzag32(length)) + Math.max(length, 0)
}

function isField (value: unknown): value is string | Buffer | null | undefined {
  return value === null || value === undefined || typeof value === 'string' || Buffer.isBuffer(value)
}

/**
 * Whether encodeKafkaRecord handles this input exactly as kafkajs would. Anything else (numbers
 * as values, non-Buffer typed arrays, null header values, deltas out of range) is left to kafkajs'
 * own encoder, whose quirks (String(value), thrown TypeErrors) it then keeps.
 */
export function isFastRecordInput (input: KafkaRecordInput): boolean {
  if (!Number.isInteger(input.offsetDelta) || input.offsetDelta < 0 || input.offsetDelta > 0x7fffffff) return false
  if (!Number.isSafeInteger(input.timestampDelta) || Math.abs(input.timestampDelta) >= varlongMagnitudeLimit) return false
  if (!isField(input.key) || !isField(input.value)) return false
  const headers = input.headers
  if (headers === undefined) return true
  if (headers === null || typeof headers !== 'object') return false
  for (const name of Object.keys(headers)) {
    const value = headers[name]
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item !== 'string' && !Buffer.isBuffer(item)) return false
    } else if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
      return false
    }
  }
  return true
}

/** The record's bytes; the caller has checked isFastRecordInput. */
export function encodeKafkaRecord (input: KafkaRecordInput): Buffer {
  const keyLength = fieldLength(input.key)
  const valueLength = fieldLength(input.value)
  const timestampZigzag = zigzag64(input.timestampDelta)
  const offsetZigzag = zigzag32(input.offsetDelta)
  // Headers flattened as kafkajs does: in key order, an array value as repeated headers.
  const names: Buffer[] = []
  const values: Array<string | Buffer> = []
  const valueLengths: number[] = []
  const headers = input.headers ?? {}
  for (const name of Object.keys(headers)) {
    const value = headers[name]!
    const items: ReadonlyArray<string | Buffer> = Array.isArray(value) ? value : [value as string | Buffer]
    const nameBytes = headerName(name)
    for (const item of items) {
      names.push(nameBytes)
      values.push(item)
      valueLengths.push(fieldLength(item))
    }
  }
  let bodySize = 1 + varintSize(timestampZigzag) + varintSize(offsetZigzag) + fieldSize(keyLength) + fieldSize(valueLength) +
    varintSize(zigzag32(names.length))
  for (let i = 0; i < names.length; i++) bodySize += fieldSize(names[i]!.length) + fieldSize(valueLengths[i]!)

  const bodySizeZigzag = zigzag32(bodySize)
  const buf = Buffer.allocUnsafe(varintSize(bodySizeZigzag) + bodySize)
  let offset = writeVarint(buf, 0, bodySizeZigzag)
  buf[offset++] = 0 // attributes: none used per record
  offset = writeVarint(buf, offset, timestampZigzag)
  offset = writeVarint(buf, offset, offsetZigzag)
  offset = writeField(buf, offset, input.key, keyLength)
  offset = writeField(buf, offset, input.value, valueLength)
  offset = writeVarint(buf, offset, zigzag32(names.length))
  for (let i = 0; i < names.length; i++) {
    offset = writeField(buf, offset, names[i], names[i]!.length)
    offset = writeField(buf, offset, values[i], valueLengths[i]!)
  }
  if (offset !== buf.length) assert.fail(`kafka record encoder wrote ${offset} of ${buf.length} bytes`)
  return buf
}

/** The fields of a RecordBatch (magic 2) header; 64-bit ones as bigint. */
export interface KafkaRecordBatchInput {
  firstOffset: bigint
  partitionLeaderEpoch: number
  attributes: number
  lastOffsetDelta: number
  firstTimestamp: bigint
  maxTimestamp: bigint
  producerId: bigint
  producerEpoch: number
  firstSequence: number
  /** Encoded records (encodeKafkaRecord), in offset order. */
  records: readonly Buffer[]
}

const recordBatchMagic = 2
/** FirstOffset(8) Length(4) PartitionLeaderEpoch(4) Magic(1) CRC(4). */
const batchPrefixBytes = 21
/** Attributes(2) LastOffsetDelta(4) FirstTimestamp(8) MaxTimestamp(8) ProducerId(8) ProducerEpoch(2) FirstSequence(4) RecordCount(4). */
const batchBodyHeaderBytes = 40

/**
 * One uncompressed RecordBatch in one buffer:
 *   FirstOffset:int64 Length:int32 PartitionLeaderEpoch:int32 Magic:int8 CRC:uint32 Attributes:int16
 *   LastOffsetDelta:int32 FirstTimestamp:int64 MaxTimestamp:int64 ProducerId:int64 ProducerEpoch:int16
 *   FirstSequence:int32 Records:[Record]
 * Length counts from PartitionLeaderEpoch on; the CRC-32C covers Attributes to the end.
 */
export function encodeKafkaRecordBatch (input: KafkaRecordBatchInput, checksum: (bytes: Uint8Array) => number): Buffer {
  let recordBytes = 0
  for (const record of input.records) recordBytes += record.length
  const buf = Buffer.allocUnsafe(batchPrefixBytes + batchBodyHeaderBytes + recordBytes)
  buf.writeBigInt64BE(BigInt.asIntN(64, input.firstOffset), 0)
  buf.writeInt32BE(buf.length - 12, 8)
  buf.writeInt32BE(input.partitionLeaderEpoch, 12)
  buf.writeInt8(recordBatchMagic, 16)
  let offset = batchPrefixBytes
  offset = buf.writeInt16BE(input.attributes, offset)
  offset = buf.writeInt32BE(input.lastOffsetDelta, offset)
  offset = buf.writeBigInt64BE(BigInt.asIntN(64, input.firstTimestamp), offset)
  offset = buf.writeBigInt64BE(BigInt.asIntN(64, input.maxTimestamp), offset)
  offset = buf.writeBigInt64BE(BigInt.asIntN(64, input.producerId), offset)
  offset = buf.writeInt16BE(input.producerEpoch, offset)
  offset = buf.writeInt32BE(input.firstSequence, offset)
  offset = buf.writeInt32BE(input.records.length, offset)
  for (const record of input.records) offset += record.copy(buf, offset)
  if (offset !== buf.length) assert.fail(`kafka record batch encoder wrote ${offset} of ${buf.length} bytes`)
  buf.writeUInt32BE(checksum(buf.subarray(batchPrefixBytes)), 17)
  return buf
}
