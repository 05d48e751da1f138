// The notifier's Kafka side: its own consumer group on payments.events. Each fetched batch of a
// partition becomes merchant events and pending deliveries in ONE Postgres statement
// (store.ts recordEvents), and only once that is written does the batch resolve, so its offsets
// are committed after the rows exist: a crash before re-delivers the batch, which makes the same
// event ids (ON CONFLICT DO NOTHING), never a lost or a second event. Deliveries themselves run
// from Postgres (dispatcher.ts), so a slow endpoint never holds the consumer back.

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { BatchControl, ConsumedMessage } from '../lib/event-bus.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import { decodeChangeEvent } from '../lib/payment-codec.ts'
import { merchantEventOf, type MerchantEvent } from './events.ts'
import type { NotifierLimits } from './limits.ts'

export interface ConsumerDeps {
  sealer: FieldSealer
  /** False for a merchant known to have no endpoint: its changes make no event (merchant-filter.ts). */
  wanted: (merchantId: string) => boolean
  record: (events: readonly MerchantEvent[]) => Promise<number>
  /** New deliveries were written: look at the queue now rather than at the next poll. */
  onDeliveriesMade: () => void
  limits: Pick<NotifierLimits, 'storeRetryBaseDelayMs' | 'storeRetryDelayMsMax'>
  log: Logger
  onPoison?: () => void
  onEvents?: (consumed: number, recorded: number) => void
  onStoreRetry?: () => void
}

export class BatchAbandoned extends Error {
  constructor () {
    super('the consumer is stopping or rebalancing: the batch is delivered again')
    this.name = 'BatchAbandoned'
  }
}

/** The merchant events of a batch; an undecodable message is logged and skipped (the processor dead-letters it). */
export function merchantEventsOf (deps: Pick<ConsumerDeps, 'sealer' | 'log' | 'onPoison' | 'wanted'>, messages: readonly ConsumedMessage[]): MerchantEvent[] {
  const events: MerchantEvent[] = []
  for (const message of messages) {
    // A PSP webhook that changed nothing visible makes no merchant event: not even decoded.
    if (message.headers['event-type'] === 'payment.webhook_received') continue
    try {
      const change = decodeChangeEvent(message.value, deps.sealer)
      if (!deps.wanted(change.payment.merchantId)) continue
      const event = merchantEventOf(change)
      if (event !== undefined) events.push(event)
    } catch (error) {
      deps.onPoison?.()
      deps.log.error({ err: error, partition: message.partition, offset: message.offset, key: message.key }, 'unreadable change event skipped')
    }
  }
  return events
}

export async function handleBatch (deps: ConsumerDeps, messages: readonly ConsumedMessage[], control: BatchControl): Promise<void> {
  const events = merchantEventsOf(deps, messages)
  if (events.length === 0) {
    deps.onEvents?.(messages.length, 0)
    return
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const made = await deps.record(events)
      deps.onEvents?.(messages.length, events.length)
      if (made > 0) deps.onDeliveriesMade()
      return
    } catch (error) {
      deps.onStoreRetry?.()
      deps.log.warn({ err: error, attempt, events: events.length, checkout_id: events[0]!.checkoutId }, 'recording merchant events failed; retrying')
      if (control.isStale()) throw new BatchAbandoned()
      await sleep(backoffDelayMs({ baseDelayMs: deps.limits.storeRetryBaseDelayMs, delayMsMax: deps.limits.storeRetryDelayMsMax }, attempt))
      await control.heartbeat()
    }
  }
}
