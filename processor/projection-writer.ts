// Group commit for the Postgres projection (lib/group-writer.ts): one statement per turn whatever
// the number of partitions or batches in flight, and one statement at a time (two concurrent
// upserts of overlapping payments rows could deadlock; a single writer cannot).

import { GroupWriter } from '../lib/group-writer.ts'
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

export class ProjectionWriter {
  readonly #writer: GroupWriter<ChangeEvent, RefusedEvents>

  constructor (write: (events: readonly ChangeEvent[]) => Promise<RefusedEvents | void>, options: ProjectionWriterOptions, log: Logger, hooks: ProjectionWriterHooks = {}) {
    this.#writer = new GroupWriter<ChangeEvent, RefusedEvents>({
      write: async (events) => (await write(events)) ?? noneRefused,
      idOf: (event) => event.eventId,
      empty: noneRefused,
      itemsPerStatementMax: options.eventsPerStatementMax,
      retryBaseDelayMs: options.backoffBaseDelayMs,
      retryDelayMsMax: options.backoffDelayMsMax,
      log,
      failureMessage: 'projection failed; retrying',
      failureFields: (events) => ({ events: events.length }),
      ...(hooks.onWritten === undefined ? {} : { onWritten: (events: readonly ChangeEvent[], _refused: RefusedEvents, durationMs: number) => hooks.onWritten!(events.length, durationMs) }),
      ...(hooks.onRetry === undefined ? {} : { onRetry: hooks.onRetry }),
    })
  }

  /** Submissions waiting or being written. */
  get queued (): number { return this.#writer.queued }

  /**
   * Resolves once every event is in Postgres (or refused: the map says which). Never rejects: a failed write (Postgres down) is
   * retried with backoff until it succeeds, and the caller's offsets stay uncommitted meanwhile.
   * (The number of events waiting is bounded by the consumer's messages in flight.)
   */
  submit (events: readonly ChangeEvent[]): Promise<RefusedEvents> {
    return this.#writer.submit(events)
  }
}
