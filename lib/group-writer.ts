// Group commit of consumed events into Postgres, one statement at a time: everything submitted
// while a statement runs goes into the next one (up to `itemsPerStatementMax`; a larger submission
// is written alone), in submission order, one copy per id (a relay retry's copy or a redelivered
// message). So Postgres sees one statement per turn whatever the number of batches in flight, a
// later batch is never written before an earlier one, and two writers never race on overlapping
// rows. A failed write (Postgres down) is retried with backoff until it succeeds: submit() never
// rejects, and callers commit no offset past an unwritten submission meanwhile.
// Used by the processor's projection (processor/projection-writer.ts) and the notifier's event
// writer (notifier/event-writer.ts).

import { backoffDelayMs, sleep } from './backoff.ts'
import type { Logger } from './log.ts'

export interface GroupWriterOptions<T, R> {
  write: (items: readonly T[]) => Promise<R>
  /** Items with the same id in one statement are written once. */
  idOf: (item: T) => string
  /** What an empty submission resolves with (nothing is written). */
  empty: R
  itemsPerStatementMax: number
  retryBaseDelayMs: number
  retryDelayMsMax: number
  log: Logger
  /** The warning logged for each failed attempt, and fields of it beyond the error and attempt. */
  failureMessage: string
  failureFields?: (items: readonly T[]) => Record<string, unknown>
  onWritten?: (items: readonly T[], result: R, durationMs: number) => void
  onRetry?: () => void
}

interface Submission<T, R> {
  items: readonly T[]
  resolve: (result: R) => void
}

export class GroupWriter<T, R> {
  readonly #o: GroupWriterOptions<T, R>
  #queue: Array<Submission<T, R>> = []
  #running: Promise<void> | undefined

  constructor (options: GroupWriterOptions<T, R>) {
    this.#o = options
  }

  /** Submissions waiting or being written. */
  get queued (): number { return this.#queue.length }

  /** Resolves, with what the statement that took them returned, once the items are written. Never rejects. */
  submit (items: readonly T[]): Promise<R> {
    if (items.length === 0) return Promise.resolve(this.#o.empty)
    return new Promise<R>((resolve) => {
      this.#queue.push({ items, resolve })
      this.#running ??= this.#loop()
    })
  }

  async #loop (): Promise<void> {
    const o = this.#o
    // Ends (and clears #running) in the tick in which it finds the queue empty: nothing is stranded.
    while (this.#queue.length > 0) {
      const taken: Array<Submission<T, R>> = []
      const items: T[] = []
      const seen = new Set<string>()
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!
        if (taken.length > 0 && items.length + next.items.length > o.itemsPerStatementMax) break
        taken.push(this.#queue.shift()!)
        for (const item of next.items) {
          const id = o.idOf(item)
          if (seen.has(id)) continue
          seen.add(id)
          items.push(item)
        }
      }
      let result: R
      for (let attempt = 0; ; attempt++) {
        const startedAt = performance.now()
        try {
          result = await o.write(items)
          o.onWritten?.(items, result, performance.now() - startedAt)
          break
        } catch (error) {
          o.onRetry?.()
          o.log.warn({ err: error, attempt, ...o.failureFields?.(items) }, o.failureMessage)
          await sleep(backoffDelayMs({ baseDelayMs: o.retryBaseDelayMs, delayMsMax: o.retryDelayMsMax }, attempt))
        }
      }
      for (const submission of taken) submission.resolve(result)
    }
    this.#running = undefined
  }
}
