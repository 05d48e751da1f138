// A counting semaphore: bounds how many of something are in flight at once.

import assert from 'node:assert/strict'

export class Semaphore {
  readonly #limit: number
  #active = 0
  #waiters: Array<() => void> = []

  constructor (limit: number) {
    assert.ok(Number.isInteger(limit) && limit > 0)
    this.#limit = limit
  }

  get active (): number { return this.#active }

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#limit) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    else this.#active++
    try {
      return await task()
    } finally {
      const next = this.#waiters.shift()
      // Hand the slot straight to the next waiter, so the count never exceeds the limit.
      if (next !== undefined) next()
      else this.#active--
    }
  }
}
