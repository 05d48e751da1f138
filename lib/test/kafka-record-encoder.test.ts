// The one-buffer Kafka record and record batch encoders must write exactly the bytes kafkajs' own
// encoders write, and hand kafkajs' encoders whatever they do not cover. Seeded: RINGPAY_RECORD_SEED replays.

import t from 'tap'
import { prng } from '../../test/helpers/prng.ts'
import { encodeKafkaRecord, isFastRecordInput, type KafkaRecordInput } from '../kafka-record-encoder.ts'
import { createRequire } from 'node:module'
import {
  fastEncodingState, fastRecordBatchEncoder, fastRecordEncoder, kafkajsRecordBatchEncoder, kafkajsRecordEncoder,
} from '../kafkajs-fast-encoding.ts'


const alphabets = ['abcXYZ_-0189', 'é€ü', '😀']

function text (random: () => number, lengthMax: number): string {
  const length = Math.floor(random() * random() * (lengthMax + 1))
  let out = ''
  for (let i = 0; i < length; i++) {
    const chars = [...alphabets[Math.floor(random() * (random() < 0.8 ? 1 : alphabets.length))]!]
    out += chars[Math.floor(random() * chars.length)]
  }
  return out
}

function bytes (random: () => number, lengthMax: number): Buffer {
  const out = Buffer.alloc(Math.floor(random() * random() * (lengthMax + 1)))
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256)
  return out
}

function field (random: () => number, lengthMax: number): string | Buffer | null | undefined {
  const pick = random()
  if (pick < 0.05) return null
  if (pick < 0.1) return undefined
  return pick < 0.5 ? text(random, lengthMax) : bytes(random, lengthMax)
}

/** Deltas across every varint width, both signs for the timestamp. */
function delta (random: () => number, signed: boolean): number {
  const magnitude = Math.floor(2 ** Math.floor(random() * (signed ? 52 : 31)) * random())
  return signed && random() < 0.3 ? -magnitude : magnitude
}

function record (random: () => number): KafkaRecordInput {
  const headers: Record<string, string | Buffer | Array<string | Buffer>> = {}
  const headerCount = Math.floor(random() * 6)
  for (let i = 0; i < headerCount; i++) {
    const name = random() < 0.7 ? ['event-id', 'event-type', 'schema-version', 'node-id'][i % 4]! : text(random, 20)
    headers[name] = random() < 0.15
      ? [text(random, 30), bytes(random, 30)]
      : random() < 0.5 ? text(random, 40) : bytes(random, 40)
  }
  return {
    offsetDelta: delta(random, false),
    timestampDelta: delta(random, true),
    key: field(random, 64),
    value: field(random, random() < 0.1 ? 20_000 : 600),
    headers: random() < 0.1 ? undefined : headers,
  }
}

const seed = Number(process.env.RINGPAY_RECORD_SEED ?? 20261123)
const cases = 3000

t.equal(fastEncodingState, 'installed', 'kafkajs produce requests use the fast encoder')

t.test(`random records encode byte for byte as kafkajs does (seed ${seed}, ${cases} cases)`, async (t) => {
  const random = prng(seed)
  let mismatches = 0
  let slowPath = 0
  for (let i = 0; i < cases && mismatches < 5; i++) {
    const input = record(random)
    if (!isFastRecordInput(input)) slowPath++
    const expected = kafkajsRecordEncoder(input).buffer
    const actual = encodeKafkaRecord(input)
    if (!actual.equals(expected)) {
      mismatches++
      t.fail(`case ${i} differs`, { input, expected: expected.toString('hex'), actual: actual.toString('hex') })
    }
  }
  t.equal(mismatches, 0)
  t.equal(slowPath, 0, 'every generated input is on the fast path')
})

t.test('the varint and varlong boundaries', async (t) => {
  const boundaries = [0, 1, 63, 64, 127, 128, 8191, 8192, 2 ** 20, 2 ** 31 - 1]
  for (const offsetDelta of boundaries) {
    for (const timestampDelta of [...boundaries, -1, -64, -65, -(2 ** 31), 2 ** 40, -(2 ** 40), 2 ** 52 - 1, -(2 ** 52 - 1)]) {
      const input = { offsetDelta, timestampDelta, key: 'k', value: Buffer.from([1, 2]), headers: { a: 'b' } }
      t.same(encodeKafkaRecord(input), kafkajsRecordEncoder(input).buffer, `offset ${offsetDelta}, timestamp ${timestampDelta}`)
    }
  }
})

t.test('inputs outside the fast path go to kafkajs, quirks and errors included', async (t) => {
  const uint8 = { offsetDelta: 0, timestampDelta: 0, key: 'k', value: new Uint8Array([1, 2]) as Buffer, headers: {} }
  t.notOk(isFastRecordInput(uint8), 'a non-Buffer typed array is not ours to encode')
  t.same(fastRecordEncoder(uint8).buffer, kafkajsRecordEncoder(uint8).buffer, 'kafkajs writes String(value), as before')
  const nullHeader = { offsetDelta: 0, timestampDelta: 0, key: 'k', value: 'v', headers: { h: null as unknown as string } }
  t.notOk(isFastRecordInput(nullHeader))
  t.throws(() => fastRecordEncoder(nullHeader), 'a null header value throws as it does in kafkajs')
  for (const timestampDelta of [2 ** 52, -(2 ** 52), 2 ** 60]) {
    const huge = { offsetDelta: 0, timestampDelta, key: 'k', value: 'v', headers: {} }
    t.notOk(isFastRecordInput(huge), `a delta of ${timestampDelta} is left to kafkajs' 64-bit arithmetic`)
    t.same(fastRecordEncoder(huge).buffer, kafkajsRecordEncoder(huge).buffer)
  }
})

const Long = createRequire(import.meta.url)('kafkajs/src/utils/long.js')

t.test(`random record batches encode byte for byte as kafkajs does (seed ${seed})`, async (t) => {
  const random = prng(seed + 1)
  for (let i = 0; i < 200; i++) {
    const records = Array.from({ length: Math.floor(random() * 20) }, () => fastRecordEncoder(record(random)))
    const timestamp = 1_700_000_000_000 + Math.floor(random() * 1e10)
    const args = {
      records,
      firstTimestamp: timestamp,
      maxTimestamp: timestamp + Math.floor(random() * 1000),
      lastOffsetDelta: Math.max(records.length - 1, 0),
      transactional: random() < 0.3,
      producerId: random() < 0.5 ? Long.fromInt(-1) : Long.fromValue(Math.floor(random() * 2 ** 40)),
      producerEpoch: Math.floor(random() * 100),
      firstSequence: random() < 0.5 ? 0 : Math.floor(random() * 2 ** 30),
      ...(random() < 0.3 ? { firstOffset: Long.fromValue(Math.floor(random() * 2 ** 45)) } : {}),
      ...(random() < 0.3 ? { partitionLeaderEpoch: Math.floor(random() * 1000) } : {}),
    }
    const expected = (await kafkajsRecordBatchEncoder(args)).buffer
    const actual = await fastRecordBatchEncoder(args)
    if (!actual.buffer.equals(expected)) {
      t.fail(`batch ${i} differs`, { expected: expected.toString('hex'), actual: actual.buffer.toString('hex') })
      return
    }
    t.equal(actual.size(), expected.length, `batch ${i}: size() is the byte length`)
  }
})

t.test('a compressed batch goes to kafkajs', async (t) => {
  const records = [fastRecordEncoder({ offsetDelta: 0, timestampDelta: 0, key: 'k', value: 'v'.repeat(100), headers: {} })]
  const gzip = 1
  const args = { compression: gzip, records, firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000 }
  const fast = await fastRecordBatchEncoder(args)
  const original = await kafkajsRecordBatchEncoder(args)
  // gzip output carries no timestamp of its own here, so equal inputs give equal bytes.
  t.same(fast.buffer, original.buffer)
  t.equal(fast.buffer.readInt16BE(21) & 0x07, gzip, 'the batch says gzip')
})
