// Stripe-looking object ids: a type prefix and 24 random base62 characters (~143 bits), from the
// OS CSPRNG so no test or client can predict one. Bytes are drawn from a pool refilled in bulk:
// a charge needs three ids, and one randomFillSync per id would dominate the bulk generator.

import { randomFillSync } from 'node:crypto'

const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const idRandomChars = 24
const poolBytes = 16 * 1024
// Bytes at or above 248 (= 4 * 62) are skipped so every character is equally likely.
const unbiasedByteLimit = 248

const pool = Buffer.alloc(poolBytes)
let poolOffset = poolBytes

function nextByte (): number {
  if (poolOffset === poolBytes) {
    randomFillSync(pool)
    poolOffset = 0
  }
  return pool[poolOffset++]!
}

export function randomId (prefix: string): string {
  let id = prefix + '_'
  while (id.length < prefix.length + 1 + idRandomChars) {
    const byte = nextByte()
    if (byte < unbiasedByteLimit) id += alphabet[byte % 62]!
  }
  return id
}
