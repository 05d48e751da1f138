// Group commit: requests queue in a bounded ring buffer; one flusher writes them in batches, one
// fsynced batch at a time. A batch is started as soon as the disk is idle (or after
// flushIntervalMs, when set), and writes queued while one batch is in flight go in the next,
// up to batchSizeMax. Each request is answered only after its batch is durable.

import assert from 'node:assert/strict'
import { ProblemError } from './errors.ts'
import { RingBuffer } from './ring-buffer.ts'

export interface Deferred<T> {
  value: T
  resolve: () => void
  reject: (error: unknown) => void
}

export interface GroupCommitOptions<T> {
  ringCapacity: number
  batchSizeMax: number
  flushIntervalMs: number
  /** Writes one batch durably; throws if it could not. */
  writeBatch: (items: T[]) => Promise<void>
  /** Called when a write fails: the disk state is unknown, so the node must stop. */
  onWriteFailure: (error: unknown) => void
  onBatchWritten?: (size: number, durationMs: number) => void
}

export class GroupCommitter<T> {
  readonly #ring: RingBuffer<Deferred<T>>
  readonly #options: GroupCommitOptions<T>
  #writing = false
  #flushScheduled = false
  #lingerTimer: NodeJS.Timeout | undefined
  #failed = false
  #drainWaiters: Array<() => void> = []

  constructor (options: GroupCommitOptions<T>) {
    assert.ok(options.batchSizeMax >= 1 && options.batchSizeMax <= options.ringCapacity)
    this.#options = options
    this.#ring = new RingBuffer(options.ringCapacity)
  }

  get depth (): number {
    return this.#ring.size
  }

  get capacity (): number {
    return this.#ring.capacity
  }

  /** Queues a write; resolves once it is durable. Rejects at once with `overloaded` when full. */
  submit (value: T): Promise<void> {
    if (this.#failed) return Promise.reject(new ProblemError('shutting_down'))
    return new Promise<void>((resolve, reject) => {
      if (!this.#ring.push({ value, resolve, reject })) {
        reject(new ProblemError('overloaded', { retryAfterS: 1, detail: 'write queue is full' }))
        return
      }
      this.#schedule()
    })
  }

  /** Resolves when everything queued so far is written (used at shutdown). */
  drained (): Promise<void> {
    if (this.#ring.size === 0 && !this.#writing) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  #schedule (): void {
    if (this.#writing || this.#flushScheduled) return
    if (this.#ring.size >= this.#options.batchSizeMax || this.#options.flushIntervalMs === 0) {
      this.#flushScheduled = true
      // setImmediate, not a microtask: requests parsed in the same I/O phase join this batch.
      setImmediate(() => this.#flush())
      return
    }
    this.#lingerTimer ??= setTimeout(() => {
      this.#lingerTimer = undefined
      this.#flushScheduled = true
      this.#flush()
    }, this.#options.flushIntervalMs)
  }

  async #flush (): Promise<void> {
    this.#flushScheduled = false
    if (this.#lingerTimer !== undefined) {
      clearTimeout(this.#lingerTimer)
      this.#lingerTimer = undefined
    }
    assert.ok(!this.#writing, 'two batches in flight')
    const batch = this.#ring.shiftMany(this.#options.batchSizeMax)
    if (batch.length === 0) return this.#notifyDrained()
    this.#writing = true
    const startedAt = performance.now()
    try {
      await this.#options.writeBatch(batch.map((item) => item.value))
    } catch (error) {
      this.#failed = true
      for (const item of batch) item.reject(new ProblemError('shutting_down', { cause: error }))
      for (const item of this.#ring.shiftMany(this.#ring.capacity)) item.reject(new ProblemError('shutting_down'))
      this.#writing = false
      this.#notifyDrained()
      this.#options.onWriteFailure(error)
      return
    }
    this.#writing = false
    this.#options.onBatchWritten?.(batch.length, performance.now() - startedAt)
    for (const item of batch) item.resolve()
    if (this.#ring.size > 0) {
      // These writes already waited one batch: no linger for them.
      this.#flushScheduled = true
      setImmediate(() => this.#flush())
    } else {
      this.#notifyDrained()
    }
  }

  #notifyDrained (): void {
    if (this.#ring.size > 0 || this.#writing) return
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const resolve of waiters) resolve()
  }
}
