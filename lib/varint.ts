// Unsigned base-128 varints, as protobuf and Kafka's record format write them, for non-negative
// safe integers (up to 2^53: division, not 32-bit shifts). Zigzag encoding of signed values is
// the caller's.

import assert from 'node:assert/strict'

export function varintSize (value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 0)) assert.fail(`cannot encode ${value} as a varint`)
  let size = 1
  while (value >= 128) {
    value = Math.floor(value / 128)
    size++
  }
  return size
}

/** Writes `value` at `at`; returns the offset after it. */
export function writeVarint (out: Buffer, at: number, value: number): number {
  while (value >= 128) {
    out[at++] = (value % 128) | 128
    value = Math.floor(value / 128)
  }
  out[at++] = value
  return at
}
