// A fixed-size Bloom filter over checkout ids: "certainly not stored" without touching LevelDB.
// The accept path asks it before the idempotency read; most ids are new, and a definite "no"
// skips a synchronous LevelDB lookup (memtable, every level's tables, the DB mutex).
// Only negatives are trusted: "maybe" always falls through to the store, so a full or stale
// filter costs speed, never correctness. Bounded: the bit array never grows; past its design
// load the false-positive rate rises and more lookups go to LevelDB.

import assert from 'node:assert/strict'

/** Probes per id: near optimal for ~10 bits per id (false positives ≈ 1 % at that load). */
const probes = 7

export class IdFilter {
  readonly #words: Uint32Array
  readonly #mask: number
  #added = 0

  constructor (bytes: number) {
    assert.ok(Number.isInteger(bytes) && bytes >= 1024 && (bytes & (bytes - 1)) === 0, 'id filter bytes must be a power of two ≥ 1024')
    this.#words = new Uint32Array(bytes / 4)
    this.#mask = bytes * 8 - 1
  }

  /** Ids added (with repeats): how loaded the filter is. */
  get added (): number {
    return this.#added
  }

  /** Ids it holds at about 1 % false positives. */
  get designIds (): number {
    return Math.floor((this.#mask + 1) / 10)
  }

  add (id: string): void {
    hashId(id)
    let h1 = hashes[0]!
    const h2 = hashes[1]!
    for (let i = 0; i < probes; i++) {
      const bit = h1 & this.#mask
      this.#words[bit >>> 5]! |= 1 << (bit & 31)
      h1 = (h1 + h2) >>> 0
    }
    this.#added++
  }

  /** false: the id was never added. true: it may have been. */
  mightContain (id: string): boolean {
    hashId(id)
    let h1 = hashes[0]!
    const h2 = hashes[1]!
    for (let i = 0; i < probes; i++) {
      const bit = h1 & this.#mask
      if ((this.#words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false
      h1 = (h1 + h2) >>> 0
    }
    return true
  }
}

/** Output of hashId (no allocation per call). */
const hashes = new Uint32Array(2)

/**
 * Two independent 32-bit hashes of the UTF-16 code units in one pass (FNV-1a and a
 * murmur-style multiply-xor, each through murmur3's finaliser), for double hashing. The second
 * (the probe step) is odd, so an id's probes are distinct bits.
 */
function hashId (id: string): void {
  let a = 0x811c9dc5
  let b = 0x9e3779b9 ^ id.length
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15)
  }
  hashes[0] = fmix32(a)
  hashes[1] = fmix32(b) | 1
}

function fmix32 (input: number): number {
  let h = input
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
