// Runs tasks one after another per key, different keys at once. The processor keeps the work of
// one checkout id in event order with it while other payments (of the same partition too) go on:
// a slow PSP call holds back only its own payment.

export class KeyedQueue {
  /** The last task queued per key; the entry goes when that task settles. Bounded by the tasks in flight. */
  readonly #tails = new Map<string, Promise<void>>()

  /** Keys with a task queued or running. */
  get keys (): number { return this.#tails.size }

  /**
   * Runs `task` once every task queued earlier for `key` has settled (whatever their outcome:
   * a failure is its own task's to report). Resolves or rejects as `task` does.
   */
  run<T> (key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key)
    const result = previous === undefined ? task() : previous.then(task)
    const tail: Promise<void> = result.then(() => undefined, () => undefined)
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return result
  }
}
