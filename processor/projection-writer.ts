// Group commit for the Postgres projection: everything submitted while a statement is running
// goes into the next one (up to a bound), so Postgres sees one statement per turn whatever the
// number of partitions or batches in flight, and one statement at a time (two concurrent upserts
// of overlapping payments rows could deadlock; a single writer cannot).

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { Logger } from '../lib/log.ts'
import type { ChangeEvent } from '../lib/payment-codec.ts'

export interface ProjectionWriterOptions {
  /** Events in one statement; a larger submission is written alone. */
  eventsPerStatementMax: number
  backoffBaseDelayMs: number
  backoffDelayMsMax: number
}

export interface ProjectionWriterHooks {
  onWritten?: (events: number, durationMs: number) => void
  onRetry?: () => void
}

/**
 * What one statement refused (projection.ts): event id → why. Refused events are not projected;
 * the caller dead-letters them. Shared by every submission the statement took.
 */
export type RefusedEvents = ReadonlyMap<string, string>
const noneRefused: RefusedEvents = new Map()

interface Submission {
  events: readonly ChangeEvent[]
  resolve: (refused: RefusedEvents) => void
}

export class ProjectionWriter {
  readonly #write: (events: readonly ChangeEvent[]) => Promise<RefusedEvents | void>
  readonly #options: ProjectionWriterOptions
  readonly #hooks: ProjectionWriterHooks
  readonly #log: Logger
  #queue: Submission[] = []
  #running: Promise<void> | undefined

  constructor (write: (events: readonly ChangeEvent[]) => Promise<RefusedEvents | void>, options: ProjectionWriterOptions, log: Logger, hooks: ProjectionWriterHooks = {}) {
    this.#write = write
    this.#options = options
    this.#log = log
    this.#hooks = hooks
  }

  /** Submissions waiting or being written. */
  get queued (): number { return this.#queue.length }

  /**
   * Resolves once every event is in Postgres (or refused: the map says which). Never rejects: a failed write (Postgres down) is
   * retried with backoff until it succeeds, and the caller's offsets stay uncommitted meanwhile.
   * (The number of events waiting is bounded by the consumer's messages in flight.)
   */
  submit (events: readonly ChangeEvent[]): Promise<RefusedEvents> {
    if (events.length === 0) return Promise.resolve(noneRefused)
    return new Promise<RefusedEvents>((resolve) => {
      this.#queue.push({ events, resolve })
      this.#running ??= this.#loop()
    })
  }

  async #loop (): Promise<void> {
    // Ends (and clears #running) in the same tick in which it finds the queue empty: no submission is stranded.
    while (this.#queue.length > 0) {
      const taken: Submission[] = []
      const events: ChangeEvent[] = []
      const seen = new Set<string>()
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!
        if (taken.length > 0 && events.length + next.events.length > this.#options.eventsPerStatementMax) break
        taken.push(this.#queue.shift()!)
        for (const event of next.events) {
          // A copy from a relay retry or a redelivery: one row per event id per statement.
          if (seen.has(event.eventId)) continue
          seen.add(event.eventId)
          events.push(event)
        }
      }
      let refused: RefusedEvents = noneRefused
      for (let attempt = 0; ; attempt++) {
        const startedAt = performance.now()
        try {
          refused = (await this.#write(events)) ?? noneRefused
          this.#hooks.onWritten?.(events.length, performance.now() - startedAt)
          break
        } catch (error) {
          this.#hooks.onRetry?.()
          this.#log.warn({ err: error, attempt, events: events.length }, 'projection failed; retrying')
          await sleep(backoffDelayMs({ baseDelayMs: this.#options.backoffBaseDelayMs, delayMsMax: this.#options.backoffDelayMsMax }, attempt))
        }
      }
      for (const submission of taken) submission.resolve(refused)
    }
    this.#running = undefined
  }
}
