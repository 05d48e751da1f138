// Group commit of consumed merchant events: everything submitted while a statement runs goes
// into the next one (up to eventsPerStatementMax), one statement at a time, in submission order.
// So however many partitions' batches are in flight, Postgres sees one statement per turn, and a
// partition's later batch is never written before its earlier one (the order the dispatcher's
// per-payment rule relies on: a version's delivery row exists before the next version's).
// A failed write (Postgres down) is retried with backoff until it succeeds; the consumer commits
// no offset past it meanwhile.

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { Logger } from '../lib/log.ts'
import type { MerchantEvent } from './events.ts'

export interface EventWriterOptions {
  eventsPerStatementMax: number
  retryBaseDelayMs: number
  retryDelayMsMax: number
}

export interface EventWriterHooks {
  /** A statement went through: events written (duplicates dropped), deliveries made. */
  onWritten?: (events: number, deliveries: number) => void
  onRetry?: () => void
}

interface Submission {
  events: readonly MerchantEvent[]
  resolve: () => void
}

export class EventWriter {
  readonly #write: (events: readonly MerchantEvent[]) => Promise<number>
  readonly #options: EventWriterOptions
  readonly #log: Logger
  readonly #hooks: EventWriterHooks
  #queue: Submission[] = []
  #running: Promise<void> | undefined

  constructor (write: (events: readonly MerchantEvent[]) => Promise<number>, options: EventWriterOptions, log: Logger, hooks: EventWriterHooks = {}) {
    this.#write = write
    this.#options = options
    this.#log = log
    this.#hooks = hooks
  }

  /** Resolves once the events (and their deliveries) are in Postgres. Never rejects. */
  submit (events: readonly MerchantEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      this.#queue.push({ events, resolve })
      this.#running ??= this.#loop()
    })
  }

  async #loop (): Promise<void> {
    // Ends (and clears #running) in the tick in which it finds the queue empty: nothing is stranded.
    while (this.#queue.length > 0) {
      const taken: Submission[] = []
      const events: MerchantEvent[] = []
      const seen = new Set<string>()
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!
        if (taken.length > 0 && events.length + next.events.length > this.#options.eventsPerStatementMax) break
        taken.push(this.#queue.shift()!)
        for (const event of next.events) {
          // A relay retry's copy, or a redelivered message: one row per event id per statement.
          if (seen.has(event.id)) continue
          seen.add(event.id)
          events.push(event)
        }
      }
      for (let attempt = 0; ; attempt++) {
        try {
          const deliveries = await this.#write(events)
          this.#hooks.onWritten?.(events.length, deliveries)
          break
        } catch (error) {
          this.#hooks.onRetry?.()
          this.#log.warn({ err: error, attempt, events: events.length, checkout_id: events[0]!.checkoutId }, 'recording merchant events failed; retrying')
          await sleep(backoffDelayMs({ baseDelayMs: this.#options.retryBaseDelayMs, delayMsMax: this.#options.retryDelayMsMax }, attempt))
        }
      }
      for (const submission of taken) submission.resolve()
    }
    this.#running = undefined
  }
}
