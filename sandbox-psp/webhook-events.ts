// Turns a charge's new status into outbox entries, written in the same batch as the charge so an
// event is never lost nor sent for a charge that was not stored. The webhook switches act here:
// drop (no entry), duplicate (a second entry with the same event id), delay (a later first attempt)
// and reorder (a stale `charge.pending` snapshot that may only go out after the newer event).

import type { Charge, ChargeStatus } from './charge.ts'
import { unixSeconds } from './charge.ts'
import type { RuntimeControl } from './faults.ts'
import { randomId } from './ids.ts'
import { keys, type CounterDeltas, type Op, type PspStore } from './store.ts'

export type EventType = 'charge.succeeded' | 'charge.failed' | 'charge.pending' | 'charge.requires_action'

export interface WebhookEvent {
  id: string
  object: 'event'
  type: EventType
  /** Unix seconds: when the change happened (not when it is delivered). */
  created: number
  data: { object: Charge }
}

export interface OutboxEntry {
  seq: number
  event_id: string
  type: EventType
  /** Our checkout id: the webhook URL is built from it at delivery time. */
  reference: string
  /** The event exactly as it will be sent and signed. */
  body: string
  /** Attempts made so far. */
  attempts: number
  due_at_ms: number
  /** Reorder: wait until the entry with this sequence has left the outbox. */
  after_seq?: number
}

export const eventTypeByStatus: Record<ChargeStatus, EventType> = {
  succeeded: 'charge.succeeded',
  failed: 'charge.failed',
  pending: 'charge.pending',
  requires_action: 'charge.requires_action',
}

export interface EventWrites {
  ops: Op[]
  counters: CounterDeltas
}

function entryOps (entry: OutboxEntry): Op[] {
  return [
    { type: 'put', key: keys.outbox(entry.seq), value: JSON.stringify(entry) },
    { type: 'put', key: keys.outboxDue(entry.due_at_ms, entry.seq), value: '' },
  ]
}

/** What the charge looked like while pending: the stale snapshot a reordered event carries. */
function pendingSnapshot (charge: Charge): Charge {
  const { settled_on: _settled, succeeded_at: _succeeded, failure_code: _code, failure_message: _message, ...rest } = charge
  return { ...rest, status: 'pending', fee: 0, net: 0 }
}

/**
 * Outbox writes for `charge` having just reached its current status. Returns nothing when webhooks
 * are off (no base URL): a benchmark without a receiver must not fill the outbox.
 */
export function eventWrites (store: PspStore, runtime: RuntimeControl, charge: Charge, nowMs: number): EventWrites {
  if (runtime.config.webhookBaseUrl === null) return { ops: [], counters: {} }
  if (runtime.webhookDropped()) return { ops: [], counters: { webhooksDropped: 1 } }
  const type = eventTypeByStatus[charge.status]
  const event: WebhookEvent = { id: randomId('evt'), object: 'event', type, created: unixSeconds(nowMs), data: { object: charge } }
  const body = JSON.stringify(event)
  const dueAtMs = nowMs + runtime.webhookDelayMs()
  const entries: OutboxEntry[] = [
    { seq: store.nextOutboxSeq(), event_id: event.id, type, reference: charge.reference, body, attempts: 0, due_at_ms: dueAtMs },
  ]
  if (runtime.webhookDuplicated()) {
    entries.push({ ...entries[0]!, seq: store.nextOutboxSeq() })
  }
  if ((charge.status === 'succeeded' || charge.status === 'failed') && runtime.webhookReordered()) {
    const stale: WebhookEvent = {
      id: randomId('evt'),
      object: 'event',
      type: 'charge.pending',
      created: charge.created,
      data: { object: pendingSnapshot(charge) },
    }
    entries.push({
      seq: store.nextOutboxSeq(),
      event_id: stale.id,
      type: stale.type,
      reference: charge.reference,
      body: JSON.stringify(stale),
      attempts: 0,
      due_at_ms: dueAtMs,
      after_seq: entries[0]!.seq,
    })
  }
  return {
    ops: entries.flatMap(entryOps),
    counters: { webhooksEnqueued: entries.length, webhooksPending: entries.length },
  }
}
