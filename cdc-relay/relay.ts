// The CDC relay's publishing loop: change log → Kafka, nothing lost, per-key order kept.
// It runs in the relay worker (relay-worker.ts) but depends only on the ChangeLog and
// EventProducer interfaces, so the tests drive it directly.
//
// The loop, one batch at a time:
//   1. wait (no polling) until the node says it committed past the cursor, then, unless a full
//      batch is waiting, until publishPacingMs (under load: the previous batch was big) or
//      publishLightPacingMs (light traffic) after the previous publish started;
//   2. read entries from the cursor: at most publishBatchEventsMax, publishBatchBytesMax; from
//      the handoff cache (handoff.ts: what the node just committed, in memory) when it starts at
//      the cursor, else from the change log on disk;
//      a batch with no `payment.created`, `payment.refund_created` or `payment.capture_requested` (it only feeds projections)
//      then waits, up to publishProjectionOnlyLingerMs after its oldest entry, for one to ride along with;
//   3. publish them (acks = all), retrying the same batch with capped, jittered exponential
//      backoff until Kafka acknowledges it;
//   4. move the cursor past those entries, then delete them (a crash in between leaves published
//      entries below the cursor; they are removed at the next start).
//
// Delivery: at least once. The cursor moves only after the acknowledgement, so a crash or a
// failed attempt re-sends (consumers deduplicate by the `event-id` header), never skips.
//
// Per-key order, without kafkajs' experimental idempotent producer: a batch is sent only after
// every earlier entry was acknowledged (one batch in flight, publishInFlightBatchesMax = 1), and a
// failed batch is re-sent whole before anything after it. Within one request, a partition's
// messages form one record batch, appended atomically and in order. So in each partition the
// first copy of event N precedes every copy of any later event of the node: whatever duplicates
// retries, timeouts or stale requests leave behind, a consumer that keeps the first copy of each
// event id sees each key's events in sequence (= version) order.

import assert from 'node:assert/strict'
import { EventBusError, type EventBusErrorCode, type EventMessage, type EventProducer } from '../lib/event-bus.ts'
import { eventMacHeader, type EventSigner } from '../lib/event-signing.ts'
import type { Logger } from '../lib/log.ts'
import { tracer } from '../lib/tracing.ts'
import { backoffDelayMs } from './backoff.ts'
import { changeLogEntry, type ChangeLog, type ChangeLogEntry } from './change-log.ts'
import { HandoffCache, type PackedEvents } from './handoff.ts'
import type { RelayLimits } from './limits.ts'
import { traceMessages, tracePublished } from './traces.ts'

/** Events a processor acts on at the PSP: never held back by the projection-only linger. */
const drivesPspWork: ReadonlySet<string> = new Set(['payment.created', 'payment.refund_created', 'payment.capture_requested'])

/** What the relay tells its host (the worker forwards these to the main thread). */
export type RelayReport =
  /** The first unpublished entry; headOccurredAtMs undefined = caught up. */
  | { kind: 'head', cursor: number, headOccurredAtMs: number | undefined }
  | { kind: 'published', cursor: number, events: number, bytes: number, durationMs: number, attempts: number, source: ReadSource }
  | { kind: 'publish_failed', cursor: number, code: EventBusErrorCode, attempt: number, delayMs: number }

export interface RelayOptions {
  nodeId: string
  topic: string
  changeLog: ChangeLog
  producer: EventProducer
  /** Adds each event's `event-mac` header (lib/event-signing.ts); undefined: unsigned (tests of the loop alone). */
  signer?: EventSigner | undefined
  limits: RelayLimits
  log: Logger
  /** The node's next_sequence when the relay starts; later ones arrive via notifyCommitted. */
  initialNextSequence: number
  report: (report: RelayReport) => void
  random?: () => number
  nowMs?: () => number
}

type WaitKind = 'work' | 'pacing' | 'linger' | 'backoff'
/** Where a batch's entries were read: the handoff cache or the change log on disk. */
export type ReadSource = 'memory' | 'disk'

export class Relay {
  readonly #options: RelayOptions
  #cursor: number
  #knownNextSequence: number
  #stopping = false
  /** Set when a stop gave up waiting for the publish in flight: its outcome must not be recorded. */
  #abandoned = false
  #done: Promise<void> | undefined
  #committing: Promise<void> | undefined
  #waiting: { kind: WaitKind, wake: () => void } | undefined
  #reportedCaughtUp = false
  readonly #handoff: HandoffCache
  /**
   * performance.now() when the last publish's first produce request started (after its read: a
   * read's duration varies, from memory or disk, so anchoring at the read let two produce
   * requests start closer than the pacing), and how many events it carried.
   */
  #lastPublishStartedAtMs = Number.NEGATIVE_INFINITY
  #lastBatchEvents = 0

  constructor (options: RelayOptions) {
    this.#options = options
    assert.equal(options.limits.publishInFlightBatchesMax, 1, 'the ordering argument needs one batch in flight')
    assert.ok(Number.isSafeInteger(options.initialNextSequence) && options.initialNextSequence >= 1)
    this.#cursor = options.changeLog.loadCursor()?.nextSequence ?? 1
    assert.ok(this.#cursor <= options.initialNextSequence,
      `relay cursor ${this.#cursor} is past the node's next sequence ${options.initialNextSequence}`)
    this.#knownNextSequence = options.initialNextSequence
    this.#handoff = new HandoffCache({ eventsMax: options.limits.handoffEventsMax, bytesMax: options.limits.handoffBytesMax })
  }

  /** The first sequence Kafka has not acknowledged. */
  get cursor (): number { return this.#cursor }

  /** Handoff cache chunks dropped so far (not contiguous with the cache, or over its bounds). */
  get handoffDropped (): number { return this.#handoff.dropped }

  /**
   * The node committed a batch: everything below `nextSequence` is durable in the change log;
   * `events`, when given, are that batch's values (the handoff).
   */
  notifyCommitted (nextSequence: number, events?: PackedEvents): void {
    assert.ok(Number.isSafeInteger(nextSequence) && nextSequence >= 1, 'bad next sequence')
    if (events !== undefined && events.firstSequence + events.lengths.length === nextSequence && events.firstSequence >= this.#cursor) {
      this.#handoff.offer(events)
    }
    if (nextSequence <= this.#knownNextSequence) return
    this.#knownNextSequence = nextSequence
    const waiting = this.#waiting
    if (waiting === undefined) return
    // Idle: start at once. Lingering: look again (a created event may have joined). Pacing: stop
    // waiting once a full batch is there. Backing off: the failed batch is retried first, so new
    // entries change nothing.
    if (waiting.kind === 'work' || waiting.kind === 'linger' ||
      (waiting.kind === 'pacing' && this.#knownNextSequence - this.#cursor >= this.#options.limits.publishBatchEventsMax)) {
      waiting.wake()
    }
  }

  /** Starts the loop; the promise rejects only on a bug or a store failure. */
  start (): Promise<void> {
    assert.ok(this.#done === undefined, 'relay started twice')
    this.#done = this.#loop()
    return this.#done
  }

  /**
   * Stops: no new batch is started; the publish in flight may finish (and its cursor be written)
   * within `drainMsMax`, after which its outcome is ignored (it will be re-sent on next start).
   */
  async stop (drainMsMax: number): Promise<'stopped' | 'abandoned'> {
    this.#stopping = true
    this.#waiting?.wake()
    const done = this.#done ?? Promise.resolve()
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      done.then(() => 'stopped' as const),
      new Promise<'abandoned'>((resolve) => { timer = setTimeout(resolve, drainMsMax, 'abandoned') }),
    ]).finally(() => clearTimeout(timer))
    if (outcome === 'abandoned') {
      this.#abandoned = true
      // A cursor write already under way finishes (it is one small batch); none starts after this.
      if (this.#committing !== undefined) await this.#committing
    }
    return outcome
  }

  #wait (kind: WaitKind, timeoutMs: number | undefined): Promise<void> {
    assert.ok(this.#waiting === undefined, 'relay waits twice')
    if (this.#stopping) return Promise.resolve()
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const wake = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        if (this.#waiting?.wake === wake) this.#waiting = undefined
        resolve()
      }
      if (timeoutMs !== undefined) timer = setTimeout(wake, timeoutMs)
      this.#waiting = { kind, wake }
    })
  }

  async #loop (): Promise<void> {
    const { limits, changeLog } = this.#options
    await changeLog.removePublished(this.#cursor)
    while (!this.#stopping) {
      if (this.#cursor >= this.#knownNextSequence) {
        if (!this.#reportedCaughtUp) {
          this.#reportedCaughtUp = true
          this.#options.report({ kind: 'head', cursor: this.#cursor, headOccurredAtMs: undefined })
        }
        await this.#wait('work', undefined)
        continue
      }
      this.#reportedCaughtUp = false
      // Pacing. Under load (the last batch was big), publishes start at most every
      // publishPacingMs, so each carries more events: kafkajs spends ~0.35 ms of CPU per produce
      // request and ~20 µs per partition in it, on top of ~10 µs per event, and that fixed part
      // is what a busy node would otherwise pay per event. Light traffic publishes at once.
      // Light traffic is paced too, on a shorter interval: a relay that has been idle for that
      // long still publishes at once, while a trickle of single events (a few hundred a second
      // spread over the nodes) shares produce requests instead of paying one each.
      const pacingMs = this.#lastBatchEvents >= limits.publishPacingAfterBatchEventsMin ? limits.publishPacingMs : limits.publishLightPacingMs
      const pacingWaitMs = this.#lastPublishStartedAtMs + pacingMs - performance.now()
      if (pacingWaitMs > 0 && this.#knownNextSequence - this.#cursor < limits.publishBatchEventsMax) {
        await this.#wait('pacing', pacingWaitMs)
        if (this.#stopping) break
      }
      const readStartedAt = tracer === undefined ? 0 : performance.now()
      let source: ReadSource = 'memory'
      let entries = this.#readHandoff()
      if (entries === undefined) {
        source = 'disk'
        entries = await changeLog.read(this.#cursor, limits.publishBatchEventsMax, limits.publishBatchBytesMax)
      }
      if (this.#stopping) break
      const lingerMs = this.#projectionOnlyLingerMs(entries)
      if (lingerMs > 0) {
        await this.#wait('linger', lingerMs)
        continue
      }
      this.#lastBatchEvents = entries.length
      this.#checkBatch(entries)
      const last = entries[entries.length - 1]!
      // Entries may be there before their batch's notification arrives: they are durable (LevelDB
      // makes a batch visible only after writing it), so they may go now.
      if (last.sequence >= this.#knownNextSequence) this.#knownNextSequence = last.sequence + 1
      this.#options.report({ kind: 'head', cursor: this.#cursor, headOccurredAtMs: entries[0]!.header.occurredAtMs })
      this.#lastPublishStartedAtMs = performance.now()
      const published = await this.#publishUntilAcknowledged(entries, source, readStartedAt)
      if (published === undefined || this.#abandoned) break
      const from = this.#cursor
      const to = last.sequence + 1
      this.#committing = changeLog.advance(from, to, this.#now())
      try {
        await this.#committing
      } finally {
        this.#committing = undefined
      }
      this.#cursor = to
      this.#handoff.dropBelow(to)
      this.#options.report({ kind: 'published', cursor: to, ...published, source })
    }
  }

  /**
   * The next batch from the handoff cache, if it holds the cursor's entry: the same bounds and
   * the same checks as a read from disk. Undefined: read the change log instead.
   */
  #readHandoff (): ChangeLogEntry[] | undefined {
    const { publishBatchEventsMax, publishBatchBytesMax } = this.#options.limits
    const handoff = this.#handoff
    handoff.dropBelow(this.#cursor)
    if (handoff.size === 0 || handoff.startSequence !== this.#cursor) return undefined
    const entries: ChangeLogEntry[] = []
    let bytes = 0
    for (let sequence = this.#cursor; sequence < handoff.endSequence && entries.length < publishBatchEventsMax; sequence++) {
      const entry = changeLogEntry(sequence, handoff.at(sequence))
      if (entries.length > 0 && bytes + entry.messageBytes > publishBatchBytesMax) break
      entries.push(entry)
      bytes += entry.messageBytes
    }
    return entries
  }

  /**
   * How much longer a batch may wait for an event that drives PSP work to ride along with: 0 when
   * it holds one (drivesPspWork), is full, or its oldest entry is old enough (its age by the
   * node's clock, which wrote it; a clock step back lengthens nothing beyond the limit).
   */
  #projectionOnlyLingerMs (entries: readonly ChangeLogEntry[]): number {
    const { publishProjectionOnlyLingerMs, publishBatchEventsMax } = this.#options.limits
    if (publishProjectionOnlyLingerMs === 0 || entries.length >= publishBatchEventsMax) return 0
    for (const entry of entries) if (drivesPspWork.has(entry.header.type)) return 0
    const ageMs = this.#now() - entries[0]!.header.occurredAtMs
    return Math.min(publishProjectionOnlyLingerMs, publishProjectionOnlyLingerMs - ageMs)
  }

  /** The change log must hold exactly the sequences from the cursor on, with no gap. */
  #checkBatch (entries: readonly ChangeLogEntry[]): void {
    const { nodeId } = this.#options
    assert.ok(entries.length > 0,
      `change log has no entry at ${this.#cursor} though the node's next sequence is ${this.#knownNextSequence}`)
    // Checks as `if`s: assert's message templates would otherwise be built for every entry.
    const eventIdPrefix = `${nodeId}:`
    entries.forEach((entry, i) => {
      if (entry.sequence !== this.#cursor + i) assert.fail(`change-log gap: expected ${this.#cursor + i}, found ${entry.sequence}`)
      if (entry.header.nodeId !== nodeId) assert.fail(`change-log entry ${entry.sequence} is from node ${entry.header.nodeId}`)
      if (entry.header.eventId !== eventIdPrefix + entry.sequence) assert.fail(`change-log entry ${entry.sequence} has event id ${entry.header.eventId}`)
    })
  }

  /** Publishes until acknowledged; undefined if the relay was stopped first. */
  async #publishUntilAcknowledged (entries: readonly ChangeLogEntry[], source: ReadSource, readStartedAt: number): Promise<{ events: number, bytes: number, durationMs: number, attempts: number } | undefined> {
    const { limits, producer, topic, log, signer } = this.#options
    // Signed once per batch, not per attempt: a re-sent batch carries the same bytes and MACs.
    const messages: EventMessage[] = entries.map((entry) => ({
      key: entry.header.checkoutId,
      value: entry.value,
      headers: signer === undefined ? entry.headers : { ...entry.headers, [eventMacHeader]: signer.sign(entry.value) },
    }))
    // Issue #18: each message's traceparent (not covered by its MAC: cdc-relay/traces.ts).
    const trace = tracer === undefined ? undefined : traceMessages(tracer, entries, messages)
    const bytes = entries.reduce((sum, entry) => sum + entry.messageBytes, 0)
    const first = entries[0]!
    const last = entries[entries.length - 1]!
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && this.#stopping) return undefined
      const startedAt = performance.now()
      try {
        await producer.publish(topic, messages, { timeoutMs: limits.publishTimeoutMs })
        const durationMs = performance.now() - startedAt
        if (attempt > 0) {
          log.info({ attempts: attempt + 1, first_sequence: first.sequence, last_sequence: last.sequence }, 'publish succeeded after retries')
        }
        if (trace !== undefined && tracer !== undefined) {
          tracePublished(tracer, trace, entries, { topic, nodeId: this.#options.nodeId, readStartedAt, attempts: attempt + 1, source })
        }
        return { events: entries.length, bytes, durationMs, attempts: attempt + 1 }
      } catch (error) {
        // Anything but an EventBusError is a bug in our code or the client: crash.
        if (!(error instanceof EventBusError)) throw error
        if (this.#stopping) return undefined
        const delayMs = backoffDelayMs(attempt, limits.retryBackoffBaseMs, limits.retryBackoffMaxMs, this.#options.random)
        log.warn({
          err: error,
          code: error.code,
          attempt: attempt + 1,
          retry_in_ms: delayMs,
          first_sequence: first.sequence,
          last_sequence: last.sequence,
          events: entries.length,
          checkout_id: first.header.checkoutId,
        }, 'publish to Kafka failed; retrying the same batch')
        this.#options.report({ kind: 'publish_failed', cursor: this.#cursor, code: error.code, attempt: attempt + 1, delayMs })
        await this.#wait('backoff', delayMs)
      }
    }
  }

  #now (): number {
    return this.#options.nowMs?.() ?? Date.now()
  }
}
