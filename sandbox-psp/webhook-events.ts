// Turns a charge's new status into outbox entries, written in the same batch as the charge so an
// event is never lost nor sent for a charge that was not stored; the dispatcher is told of them
// (`queued`) only once that batch is on disk. The webhook switches act here: drop (no entry),
// duplicate (a second entry with the same event id), delay (a later first attempt) and reorder (a
// stale `charge.pending` snapshot that may only go out after the newer event).
//
// An o/<seq> value is the entry's metadata as one JSON line, a newline, then the event body as is:
// the body is not escaped into a JSON string, and the dispatcher's start-up scan parses only the
// metadata line. JSON.stringify never emits a raw newline, so the first one ends the metadata.
// (Entries written by earlier versions are whole JSON objects with the body inside; still read.)

import type { Charge, ChargeStatus } from './charge.ts'
import type { Refund } from './refund.ts'
import { unixSeconds } from './charge.ts'
import type { RuntimeControl } from './faults.ts'
import { randomId } from './ids.ts'
import { keys, type CounterDeltas, type Op, type PspStore } from './store.ts'

export type EventType = 'charge.succeeded' | 'charge.failed' | 'charge.pending' | 'charge.requires_action' | 'charge.canceled' | 'charge.requires_capture' |
  'refund.succeeded' | 'refund.failed' | 'refund.pending'

export interface WebhookEvent {
  id: string
  object: 'event'
  type: EventType
  /** Unix seconds: when the change happened (not when it is delivered). */
  created: number
  data: { object: Charge | Refund }
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
  canceled: 'charge.canceled',
  requires_capture: 'charge.requires_capture',
}

/** What the dispatcher keeps in memory of an outbox entry: when and in which order it is due. */
export interface QueuedEvent {
  seq: number
  dueMs: number
  /** Attempts made so far: the dispatcher counts them in memory (its writes of them are deferred). */
  attempts: number
  afterSeq?: number
}

export interface EventWrites {
  ops: Op[]
  counters: CounterDeltas
  /** To hand to the dispatcher once `ops` are on disk. */
  queued: QueuedEvent[]
}

type OutboxMeta = Omit<OutboxEntry, 'body'>

export function encodeOutboxEntry (entry: OutboxEntry): string {
  const { body, ...meta } = entry
  return JSON.stringify(meta) + '\n' + body
}

export function decodeOutboxEntry (raw: string): OutboxEntry {
  const newline = raw.indexOf('\n')
  if (newline === -1) return JSON.parse(raw) as OutboxEntry
  return { ...(JSON.parse(raw.slice(0, newline)) as OutboxMeta), body: raw.slice(newline + 1) }
}

/** Only the scheduling part of a stored entry: the metadata line is parsed, the body is not. */
export function decodeQueuedEvent (raw: string): QueuedEvent {
  const newline = raw.indexOf('\n')
  const meta = JSON.parse(newline === -1 ? raw : raw.slice(0, newline)) as OutboxMeta
  return queuedEventOf(meta)
}

export function queuedEventOf (entry: OutboxMeta): QueuedEvent {
  return entry.after_seq === undefined
    ? { seq: entry.seq, dueMs: entry.due_at_ms, attempts: entry.attempts }
    : { seq: entry.seq, dueMs: entry.due_at_ms, attempts: entry.attempts, afterSeq: entry.after_seq }
}

/**
 * The event's JSON, byte for byte what JSON.stringify(event) gives, around a charge already
 * serialised (the charge's own record holds the same bytes: one stringify serves both).
 */
function eventBody (id: string, type: EventType, created: number, objectJson: string): string {
  return `{"id":${JSON.stringify(id)},"object":"event","type":"${type}","created":${created},"data":{"object":${objectJson}}}`
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
export function eventWrites (store: PspStore, runtime: RuntimeControl, charge: Charge, nowMs: number,
  chargeJson: string = JSON.stringify(charge)): EventWrites {
  if (runtime.config.webhookBaseUrl === null) return { ops: [], counters: {}, queued: [] }
  if (runtime.webhookDropped()) return { ops: [], counters: { webhooksDropped: 1 }, queued: [] }
  const type = eventTypeByStatus[charge.status]
  const eventId = randomId('evt')
  const body = eventBody(eventId, type, unixSeconds(nowMs), chargeJson)
  const dueAtMs = nowMs + runtime.webhookDelayMs()
  const entries: OutboxEntry[] = [
    { seq: store.nextOutboxSeq(), event_id: eventId, type, reference: charge.reference, body, attempts: 0, due_at_ms: dueAtMs },
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
    ops: entries.map((entry) => ({ type: 'put', key: keys.outbox(entry.seq), value: encodeOutboxEntry(entry) })),
    counters: { webhooksEnqueued: entries.length, webhooksPending: entries.length },
    queued: entries.map(queuedEventOf),
  }
}

/**
 * Outbox writes for `refund` having just reached its current status: `refund.<status>`, posted to
 * the charge's reference (Ringpay routes by the checkout id). Drop, duplicate and delay apply as
 * for charges; reordering is a charge-only switch.
 */
export function refundEventWrites (store: PspStore, runtime: RuntimeControl, refund: Refund, nowMs: number,
  refundJson: string = JSON.stringify(refund)): EventWrites {
  if (runtime.config.webhookBaseUrl === null) return { ops: [], counters: {}, queued: [] }
  if (runtime.webhookDropped()) return { ops: [], counters: { webhooksDropped: 1 }, queued: [] }
  const type: EventType = `refund.${refund.status}`
  const eventId = randomId('evt')
  const body = eventBody(eventId, type, unixSeconds(nowMs), refundJson)
  const entry: OutboxEntry = {
    seq: store.nextOutboxSeq(), event_id: eventId, type, reference: refund.payment_reference, body, attempts: 0,
    due_at_ms: nowMs + runtime.webhookDelayMs(),
  }
  const entries = runtime.webhookDuplicated() ? [entry, { ...entry, seq: store.nextOutboxSeq() }] : [entry]
  return {
    ops: entries.map((e) => ({ type: 'put', key: keys.outbox(e.seq), value: encodeOutboxEntry(e) })),
    counters: { webhooksEnqueued: entries.length, webhooksPending: entries.length },
    queued: entries.map(queuedEventOf),
  }
}
