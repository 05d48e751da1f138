// A fixed-capacity FIFO. Capacity is a power of two so the index wrap is a mask; it never grows.

import assert from 'node:assert/strict'

export class RingBuffer<T> {
  readonly capacity: number
  readonly #slots: Array<T | undefined>
  readonly #mask: number
  #head = 0 // next slot to read
  #size = 0

  constructor (capacity: number) {
    assert.ok(Number.isInteger(capacity) && capacity > 0 && (capacity & (capacity - 1)) === 0,
      'ring capacity must be a power of two')
    this.capacity = capacity
    this.#mask = capacity - 1
    this.#slots = new Array<T | undefined>(capacity).fill(undefined)
  }

  get size (): number {
    return this.#size
  }

  /** Adds at the tail; false when full (the caller sheds load, nothing is queued). */
  push (item: T): boolean {
    if (this.#size === this.capacity) return false
    this.#slots[(this.#head + this.#size) & this.#mask] = item
    this.#size++
    return true
  }

  /** Removes up to `countMax` items from the head, oldest first. */
  shiftMany (countMax: number): T[] {
    const count = Math.min(countMax, this.#size)
    const items = new Array<T>(count)
    for (let i = 0; i < count; i++) {
      const index = this.#head
      items[i] = this.#slots[index] as T
      this.#slots[index] = undefined // let the item be collected
      this.#head = (index + 1) & this.#mask
    }
    this.#size -= count
    return items
  }
}
