// The notifier's Kafka side: its own consumer group on payments.events, pipelined
// (lib/kafka-event-bus.ts runPipelined: fetches paced, a bounded number of messages in flight,
// each partition committed only up to its lowest unfinished message). Each handed-over batch
// becomes merchant events, written with their pending deliveries by the event writer
// (event-writer.ts: one statement at a time, in order); a message is finished, so its offset
// committable, only once that statement went through. A crash before re-delivers the messages,
// which make the same event ids (ON CONFLICT DO NOTHING): never a lost or a second event.
// Deliveries themselves run from Postgres (dispatcher.ts): a slow endpoint never holds the consumer.

import type { ConsumedMessage } from '../lib/event-bus.ts'
import { changeEventIdentityMismatch, eventMacHeader, type EventRefusalCode, type EventVerifier } from '../lib/event-signing.ts'
import { readChangeEventHeader, readChangeEventMerchantId } from '../cdc-relay/event-header.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import { decodeChangeEvent } from '../lib/payment-codec.ts'
import { merchantEventOf, type MerchantEvent } from './events.ts'

export interface ConsumerDeps {
  sealer: FieldSealer
  /**
   * Every node's event-signing keys (lib/event-signing.ts, issue #17 part 3): an event no node
   * signed (forged by whoever got onto the topic) makes no merchant event, so it can never reach
   * a merchant's endpoint, signed by us. The processors dead-letter it; here it is skipped.
   */
  verifier: Pick<EventVerifier, 'verify'>
  onRefused?: (code: EventRefusalCode) => void
  /** False for a merchant known to have no endpoint: its changes make no event (merchant-filter.ts). */
  wanted: (merchantId: string) => boolean
  /** Resolves once the events and their deliveries are in Postgres (event-writer.ts); never rejects. */
  submit: (events: readonly MerchantEvent[]) => Promise<void>
  log: Logger
  onPoison?: () => void
  onConsumed?: (messages: number, events: number) => void
}

/** The merchant events of a batch; an undecodable message is logged and skipped (the processor dead-letters it). */
export function merchantEventsOf (deps: Pick<ConsumerDeps, 'sealer' | 'log' | 'onPoison' | 'wanted' | 'verifier' | 'onRefused'>, messages: readonly ConsumedMessage[]): MerchantEvent[] {
  const events: MerchantEvent[] = []
  for (const message of messages) {
    // A PSP webhook that changed nothing visible makes no merchant event: not even decoded.
    if (message.headers['event-type'] === 'payment.webhook_received') continue
    try {
      // Most merchants have no endpoint: their events are dropped before the MAC check and the
      // decode (skipping needs no trust; what is kept is verified below).
      if (!deps.wanted(readChangeEventMerchantId(message.value))) continue
      // The MAC first, over the bytes as received: nothing in a forged event is opened or decoded.
      const claimed = readChangeEventHeader(message.value)
      const verdict = deps.verifier.verify(claimed.nodeId, message.value, message.headers[eventMacHeader])
      if (!verdict.ok) {
        deps.onRefused?.(verdict.code)
        deps.log.warn({ checkout_id: claimed.checkoutId.slice(0, 64), event_id: claimed.eventId.slice(0, 80), code: verdict.code,
          partition: message.partition, offset: message.offset }, 'change event refused: not signed by its node; no merchant event')
        continue
      }
      const change = decodeChangeEvent(message.value, deps.sealer)
      const mismatch = change.nodeId !== claimed.nodeId ? 'the event names another node than its header' : changeEventIdentityMismatch(change)
      if (mismatch !== undefined) {
        deps.onRefused?.('event_identity_mismatch')
        deps.log.warn({ checkout_id: claimed.checkoutId.slice(0, 64), code: 'event_identity_mismatch', detail: mismatch }, 'change event refused: inconsistent identity')
        continue
      }
      const event = merchantEventOf(change)
      if (event !== undefined) events.push(event)
    } catch (error) {
      deps.onPoison?.()
      deps.log.error({ err: error, partition: message.partition, offset: message.offset, key: message.key }, 'unreadable change event skipped')
    }
  }
  return events
}

/** runPipelined's onMessages: one promise per message, settled once its batch's events are written. */
export function handleMessages (deps: ConsumerDeps, messages: readonly ConsumedMessage[]): Array<Promise<void>> {
  const events = merchantEventsOf(deps, messages)
  deps.onConsumed?.(messages.length, events.length)
  const written = deps.submit(events)
  return messages.map(() => written)
}
