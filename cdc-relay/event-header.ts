// Reads the few ChangeEvent fields the relay needs for a Kafka message's key and headers, without
// decoding the embedded payment: the relay forwards the stored bytes unchanged, so a full decode
// would only cost CPU. Field numbers are the ones in proto/payments.proto (ChangeEvent).

import assert from 'node:assert/strict'
import protobuf from 'protobufjs'
import { eventTypes, type EventType } from '../lib/payment-codec.ts'

export interface ChangeEventHeader {
  schemaVersion: number
  eventId: string
  nodeId: string
  sequence: number
  type: EventType
  checkoutId: string
  version: number
  occurredAtMs: number
}

const wireTypeVarint = 0

export function readChangeEventHeader (bytes: Uint8Array): ChangeEventHeader {
  const reader = protobuf.Reader.create(bytes)
  let schemaVersion = 0
  let eventId = ''
  let nodeId = ''
  let sequence = 0
  let typeWire = 0
  let checkoutId = ''
  let version = 0
  let occurredAtMs = 0
  while (reader.pos < reader.len) {
    const tag = reader.uint32()
    const field = tag >>> 3
    const wireType = tag & 7
    switch (field) {
      case 1: schemaVersion = reader.uint32(); break
      case 2: eventId = reader.string(); break
      case 3: nodeId = reader.string(); break
      case 4: sequence = Number(reader.uint64()); break
      case 5: typeWire = reader.int32(); break
      case 6: checkoutId = reader.string(); break
      case 7: version = Number(reader.uint64()); break
      case 8: occurredAtMs = Number(reader.int64()); break
      default: reader.skipType(wireType)
    }
    // A known field with an unexpected wire type would have been misread: refuse it.
    if (field >= 1 && field <= 8 && field !== 2 && field !== 3 && field !== 6) {
      assert.equal(wireType, wireTypeVarint, `change event field ${field} has wire type ${wireType}`)
    }
  }
  const type = eventTypes[typeWire - 1]
  assert.ok(type !== undefined, `unknown event type on the wire: ${typeWire}`)
  assert.ok(Number.isSafeInteger(sequence) && sequence >= 1, 'bad event sequence')
  assert.ok(checkoutId.length > 0, 'change event without checkout id')
  return { schemaVersion, eventId, nodeId, sequence, type, checkoutId, version, occurredAtMs }
}

/**
 * The merchant of a change event's payment (ChangeEvent field 9, the embedded Payment; its field
 * 3), read without decoding or opening anything: a consumer that wants only some merchants' events
 * (the notifier) drops the rest before the MAC check and the decode, which cost it more than
 * everything else per event. Skipping is the safe direction, so an unauthenticated read is enough
 * for it; whatever is kept is verified and decoded in full. '' if the event carries no payment.
 */
export function readChangeEventMerchantId (bytes: Uint8Array): string {
  const reader = protobuf.Reader.create(bytes)
  while (reader.pos < reader.len) {
    const tag = reader.uint32()
    if (tag >>> 3 !== changeEventPaymentField) {
      reader.skipType(tag & 7)
      continue
    }
    assert.equal(tag & 7, wireTypeLengthDelimited, 'change event payment field has the wrong wire type')
    const end = reader.uint32() + reader.pos
    assert.ok(end <= reader.len, 'change event payment field runs past the event')
    while (reader.pos < end) {
      const paymentTag = reader.uint32()
      if (paymentTag >>> 3 === paymentMerchantIdField) {
        assert.equal(paymentTag & 7, wireTypeLengthDelimited, 'payment merchant_id has the wrong wire type')
        return reader.string()
      }
      reader.skipType(paymentTag & 7)
    }
    return ''
  }
  return ''
}

const wireTypeLengthDelimited = 2
const changeEventPaymentField = 9
const paymentMerchantIdField = 3
