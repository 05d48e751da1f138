// Group commit of consumed merchant events (lib/group-writer.ts): one statement at a time, in
// submission order, so a partition's later batch is never written before its earlier one (the
// order the dispatcher's per-payment rule relies on: a version's delivery row exists before the
// next version's). A failed write (Postgres down) is retried until it succeeds; the consumer
// commits no offset past it meanwhile.

import { GroupWriter } from '../lib/group-writer.ts'
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

export class EventWriter {
  readonly #writer: GroupWriter<MerchantEvent, number>

  constructor (write: (events: readonly MerchantEvent[]) => Promise<number>, options: EventWriterOptions, log: Logger, hooks: EventWriterHooks = {}) {
    this.#writer = new GroupWriter<MerchantEvent, number>({
      write,
      idOf: (event) => event.id,
      empty: 0,
      itemsPerStatementMax: options.eventsPerStatementMax,
      retryBaseDelayMs: options.retryBaseDelayMs,
      retryDelayMsMax: options.retryDelayMsMax,
      log,
      failureMessage: 'recording merchant events failed; retrying',
      failureFields: (events) => ({ events: events.length, checkout_id: events[0]!.checkoutId }),
      ...(hooks.onWritten === undefined ? {} : { onWritten: (events: readonly MerchantEvent[], deliveries: number) => hooks.onWritten!(events.length, deliveries) }),
      ...(hooks.onRetry === undefined ? {} : { onRetry: hooks.onRetry }),
    })
  }

  /** Resolves once the events (and their deliveries) are in Postgres. Never rejects. */
  async submit (events: readonly MerchantEvent[]): Promise<void> {
    await this.#writer.submit(events)
  }
}
