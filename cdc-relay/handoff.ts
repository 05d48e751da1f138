// The change events the node just committed, handed to the relay in memory so that it need not
// read back from LevelDB what the main thread encoded a moment ago (reading back cost ~10 µs of
// CPU per event, iterator and thread pool included, about a fifth of the relay's share).
//
// The change log on disk stays the source of truth: this is only a cache of its tail, holding
// byte-for-byte the values the committed batch wrote. The relay takes entries from here only when
// the cache starts exactly at its cursor; otherwise (after a restart, after a chunk was refused
// for size, or when the relay read ahead from disk) it reads the change log as before. A chunk
// that does not extend the cache contiguously, or would take it past its bounds, is dropped: the
// entries stay on disk, and the cache refills once the relay has caught up with them.
//
// Wire form (one postMessage per committed batch, its buffers transferred, not copied): the
// values back to back in one buffer, and their lengths.

import assert from 'node:assert/strict'

export interface PackedEvents {
  firstSequence: number
  bytes: Uint8Array
  lengths: Uint32Array
}

/** Packs a committed batch's change-event values; undefined if they exceed `bytesMax`. */
export function packEvents (firstSequence: number, values: readonly Uint8Array[], bytesMax: number): PackedEvents | undefined {
  let total = 0
  for (const value of values) total += value.byteLength
  if (total > bytesMax) return undefined
  const bytes = new Uint8Array(total)
  const lengths = new Uint32Array(values.length)
  let offset = 0
  values.forEach((value, i) => {
    bytes.set(value, offset)
    offset += value.byteLength
    lengths[i] = value.byteLength
  })
  return { firstSequence, bytes, lengths }
}

export function packedTransferList (packed: PackedEvents): ArrayBuffer[] {
  return [packed.bytes.buffer as ArrayBuffer, packed.lengths.buffer as ArrayBuffer]
}

export interface HandoffLimits {
  /** Entries held at most. */
  eventsMax: number
  /** Value bytes held at most. */
  bytesMax: number
}

/** A contiguous run of change-log values [startSequence, endSequence), bounded. */
export class HandoffCache {
  readonly #limits: HandoffLimits
  /** Values in sequence order; #head is the index of startSequence (a deque without shifting). */
  #values: Uint8Array[] = []
  #head = 0
  #startSequence = 0
  #bytes = 0
  #dropped = 0

  constructor (limits: HandoffLimits) {
    assert.ok(limits.eventsMax >= 1 && limits.bytesMax >= 1)
    this.#limits = limits
  }

  get size (): number { return this.#values.length - this.#head }
  get bytes (): number { return this.#bytes }
  get startSequence (): number { return this.#startSequence }
  get endSequence (): number { return this.#startSequence + this.size }
  /** Chunks dropped (not contiguous, or over the bounds) since start. */
  get dropped (): number { return this.#dropped }

  /** Adds a committed batch; ignored (and counted) unless it extends the cache contiguously within bounds. */
  offer (packed: PackedEvents): void {
    const count = packed.lengths.length
    if (count === 0) return
    if (this.size === 0) {
      this.#clear()
      this.#startSequence = packed.firstSequence
    } else if (packed.firstSequence !== this.endSequence) {
      this.#dropped++
      return
    }
    if (this.size + count > this.#limits.eventsMax || this.#bytes + packed.bytes.byteLength > this.#limits.bytesMax) {
      this.#dropped++
      return
    }
    let offset = 0
    for (let i = 0; i < count; i++) {
      const length = packed.lengths[i]!
      this.#values.push(packed.bytes.subarray(offset, offset + length))
      offset += length
    }
    assert.equal(offset, packed.bytes.byteLength, 'packed events: lengths do not add up to the bytes')
    this.#bytes += offset
  }

  /** Forgets every entry below `sequence` (published, or read from disk instead). */
  dropBelow (sequence: number): void {
    while (this.size > 0 && this.#startSequence < sequence) {
      this.#bytes -= this.#values[this.#head]!.byteLength
      this.#values[this.#head] = undefined as unknown as Uint8Array
      this.#head++
      this.#startSequence++
    }
    if (this.size === 0) this.#clear()
    else if (this.#head > 1024 && this.#head * 2 > this.#values.length) {
      this.#values = this.#values.slice(this.#head)
      this.#head = 0
    }
  }

  /** The value of `sequence`, which must be held. */
  at (sequence: number): Uint8Array {
    // `if` first: called per published event, and the message template would be built each time.
    if (!(sequence >= this.#startSequence && sequence < this.endSequence)) assert.fail(`sequence ${sequence} is not in the handoff cache`)
    return this.#values[this.#head + sequence - this.#startSequence]!
  }

  #clear (): void {
    this.#values = []
    this.#head = 0
    this.#bytes = 0
  }
}
