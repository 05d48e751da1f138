// The relay's cursor: the first change-log sequence Kafka has not acknowledged yet. Stored under
// `m/relay-cursor` as a protobuf RelayCursor (proto/payments.proto). It only ever moves forward,
// and only after Kafka acknowledged everything before it: a crash anywhere re-sends, never skips.

import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { schemaVersion } from '../lib/payment-codec.ts'

export const relayCursorKey = 'm/relay-cursor'

export interface RelayCursor {
  /** The first sequence not yet acknowledged by Kafka. Sequences start at 1. */
  nextSequence: number
  updatedAtMs: number
}

// payment-codec.ts (imported above) has already configured protobufjs: int64 decodes to numbers.
const root = protobuf.loadSync(fileURLToPath(new URL('../proto/payments.proto', import.meta.url)))
const relayCursorType = root.lookupType('ringpay.v1.RelayCursor')

export function encodeRelayCursor (cursor: RelayCursor): Uint8Array {
  assert.ok(Number.isSafeInteger(cursor.nextSequence) && cursor.nextSequence >= 1, 'bad relay cursor')
  return relayCursorType.encode({ schemaVersion, nextSequence: cursor.nextSequence, updatedAtMs: cursor.updatedAtMs }).finish()
}

export function decodeRelayCursor (bytes: Uint8Array): RelayCursor {
  const wire = relayCursorType.decode(bytes) as unknown as Record<string, any>
  assert.equal(wire.schemaVersion, schemaVersion, 'unknown relay cursor schema version')
  assert.ok(Number.isSafeInteger(wire.nextSequence) && wire.nextSequence >= 1, 'bad relay cursor sequence')
  return { nextSequence: wire.nextSequence, updatedAtMs: wire.updatedAtMs }
}
