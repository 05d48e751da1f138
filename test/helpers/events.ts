// Reads the stack's events topic the way a consumer must: a kafkajs consumer (behind our
// EventConsumer interface) with its own group, from the beginning, deduplicating by the
// `event-id` header and keeping the FIRST copy (the relay publishes at least once; see
// cdc-relay/relay.ts for why first-copy dedup yields per-key order).

import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import type { ConsumedMessage, EventConsumer } from '../../lib/event-bus.ts'
import { createKafkaConsumer } from '../../lib/kafka-event-bus.ts'
import { KeyRing, type FieldSealer } from '../../lib/field-crypto.ts'
import { decodeChangeEvent, type ChangeEvent } from '../../lib/payment-codec.ts'
import { kafkaEndpoint, loadStackInfo } from './stack.ts'

export interface CollectedEvent {
  partition: number
  offset: string
  key: string
  headers: Readonly<Record<string, string>>
  event: ChangeEvent
}

const consumerLimits = {
  connectionTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
  sessionTimeoutMs: 30_000,
  fetchPartitionBytesMax: 1024 * 1024,
  fetchBytesMax: 10 * 1024 * 1024,
  fetchWaitMsMax: 100,
  groupJoinTimeoutMs: 60_000,
  partitionsConsumedConcurrently: 1,
}
const pollIntervalMs = 50

export class EventCollector {
  readonly #consumer: EventConsumer
  readonly #accept: (key: string) => boolean
  /** Opens the events' sealed fields: the stack's key ring unless a test's own node used another. */
  readonly #sealer: FieldSealer
  /** First copy of each event id, in arrival order (= partition order within a partition). */
  readonly events: CollectedEvent[] = []
  readonly #seen = new Set<string>()
  /** Copies received in total, duplicates included. */
  received = 0

  private constructor (consumer: EventConsumer, accept: (key: string) => boolean, sealer: FieldSealer) {
    this.#consumer = consumer
    this.#accept = accept
    this.#sealer = sealer
  }

  /** Consumes `topic` (default: the events topic) from the beginning, keeping messages whose key passes `accept`. */
  static async start (accept: (key: string) => boolean, topic = loadStackInfo().topics.events, sealer?: FieldSealer): Promise<EventCollector> {
    const stack = loadStackInfo()
    const consumer = createKafkaConsumer({
      ...kafkaEndpoint(),
      clientId: 'ringpay-test',
      groupId: `ringpay-test-${randomBytes(8).toString('hex')}`,
      log: pino({ level: 'silent' }),
      ...consumerLimits,
    })
    const collector = new EventCollector(consumer, accept, sealer ?? KeyRing.fromFile(stack.fieldKeysFile))
    await consumer.run({
      topics: [topic],
      fromBeginning: true,
      partitionsConsumedConcurrently: consumerLimits.partitionsConsumedConcurrently,
      onBatch: async (messages) => { for (const m of messages) collector.#add(m) },
    })
    return collector
  }

  #add (message: ConsumedMessage): void {
    if (message.key === undefined || !this.#accept(message.key)) return
    this.received++
    const eventId = message.headers['event-id']
    if (eventId === undefined) throw new Error(`message at ${message.partition}/${message.offset} has no event-id header`)
    if (this.#seen.has(eventId)) return
    this.#seen.add(eventId)
    this.events.push({ partition: message.partition, offset: message.offset, key: message.key, headers: message.headers, event: decodeChangeEvent(message.value, this.#sealer) })
  }

  /** Deduplicated events per checkout id, in the order they were consumed. */
  byKey (): Map<string, CollectedEvent[]> {
    const map = new Map<string, CollectedEvent[]>()
    for (const e of this.events) {
      const list = map.get(e.key)
      if (list === undefined) map.set(e.key, [e])
      else list.push(e)
    }
    return map
  }

  /** Polls until `condition` holds; fails with `what` after `deadlineMs`. */
  async waitFor (condition: () => boolean, deadlineMs: number, what: string): Promise<void> {
    const until = Date.now() + deadlineMs
    while (!condition()) {
      if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what} (have ${this.events.length} events)`)
      await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
    }
  }

  async close (): Promise<void> {
    await this.#consumer.close()
  }
}

/**
 * Every problem with the per-key order of deduplicated events: one partition per key, created
 * first, versions never going back (a payment.webhook_received event repeats the version it saw),
 * node sequences strictly increasing.
 */
export function orderProblems (byKey: Map<string, CollectedEvent[]>): string[] {
  const problems: string[] = []
  for (const [key, events] of byKey) {
    if (new Set(events.map((e) => e.partition)).size !== 1) problems.push(`${key}: events in more than one partition`)
    events.forEach((e, i) => {
      if ((e.event.type === 'payment.created') !== (i === 0)) problems.push(`${key}: payment.created is not first (event ${i} is ${e.event.type})`)
      const previous = events[i - 1]
      if (previous === undefined) return
      if (e.event.version < previous.event.version) problems.push(`${key}: version went back at ${i}: ${previous.event.version} → ${e.event.version}`)
      if (e.event.sequence <= previous.event.sequence) problems.push(`${key}: sequence went back at ${i}`)
    })
  }
  return problems
}

/**
 * A checkout-id prefix without digits: ids `<prefix>-<n>` then hold no digit run long enough to
 * look like a card number (the node refuses those, and random hex ids hit that now and then).
 */
export function letterPrefix (label: string): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz'
  return `${label}-${Array.from(randomBytes(12), (b) => letters[b % letters.length]).join('')}`
}

/** Reads one metric (first line matching name and label text) from a node's admin port. */
export async function nodeMetric (adminPort: number, name: string, labels = ''): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))
  if (line === undefined) throw new Error(`metric ${name}{${labels}} not found on :${adminPort}`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}
