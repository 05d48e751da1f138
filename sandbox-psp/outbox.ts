// Delivers the durable webhook outbox: at least once, at most `webhookDeliveriesInFlightMax` at a
// time, retrying non-2xx answers and timeouts with capped exponential backoff up to
// `webhookAttemptsMax` attempts. Because entries are only removed after a 2xx (or giving up), a
// PSP restart resumes where it stopped; a delivery cut off by the restart is sent again, which is
// what receivers must expect of any PSP anyway.
//
// Which entry is due next is kept in memory: a heap of (due time, sequence) of at most
// `webhookQueueEntriesMax` entries, filled by the writers once their batch is on disk (`enqueue`)
// and rebuilt from the o/ entries at start. A delivery reads its entry's body from the store; no
// iterator runs per charge. Outcomes are deferred writes (store.ts): removed or rescheduled in
// memory at once, on disk with a later batch (store.ts); a crash in between only resends the event.
//
// Past the bound, new entries stay on disk only (`#spilled`); once the queue is down to half,
// a scan of o/ reads back what is neither queued, in flight nor being removed. Outcomes written
// while a scan runs keep their sequence in `#removing` until it ends, so a scan's snapshot never
// brings back an entry that was already delivered.

import { Agent, request } from 'undici'
import type { Logger } from '../lib/log.ts'
import { unixSeconds } from './charge.ts'
import { DueHeap, type DueItem } from './due-heap.ts'
import type { RuntimeControl } from './faults.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'
import { signatureHeaderName, signWebhook } from './signature.ts'
import { keys, rangeEnd, type CounterDeltas, type PspStore } from './store.ts'
import { decodeOutboxEntry, decodeQueuedEvent, encodeOutboxEntry, type QueuedEvent } from './webhook-events.ts'

export const webhookPathPrefix = '/webhooks/psp/sandbox/'
const jitterFraction = 0.2

/** Backoff before attempt `attempts + 1`, given `attempts` already failed (>= 1). */
export function retryDelayMs (limits: PspLimits, attempts: number, random: () => number): number {
  const exponential = Math.min(limits.webhookRetryMaxMs, limits.webhookRetryBaseMs * 2 ** (attempts - 1))
  // Jitter spreads retries of many events that failed together (a receiver restart).
  return Math.max(1, Math.round(exponential * (1 - jitterFraction + 2 * jitterFraction * random())))
}

interface QueuedItem extends DueItem {
  seq: number
  attempts: number
  afterSeq: number | undefined
}

export class WebhookDispatcher {
  readonly #store: PspStore
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #metrics: PspMetrics
  readonly #log: Logger
  readonly #secret: string
  readonly #agent: Agent
  /** Set when shutdown cuts the deliveries in flight: one that starts after it is cut at once. */
  #cutOff = false
  /** One controller per delivery in flight: its own deadline, and shutdown cuts them all. */
  readonly #attemptControllers = new Set<AbortController>()
  /** Entries waiting for their due time, by due time; `#queued` holds the same items by sequence. */
  readonly #heap = new DueHeap<QueuedItem>()
  readonly #queued = new Map<number, QueuedItem>()
  /** Deliveries in flight, by sequence. */
  readonly #deliveries = new Map<number, Promise<void>>()
  /** Entries delivered or given up whose removal is not on disk yet (or a refill scan may predate it). */
  readonly #removing = new Set<number>()
  #removedDuringRefill: number[] = []
  /** Some entries on disk are not in memory: a refill scan must read them back. */
  #spilled = false
  #refilling: Promise<void> | undefined
  #refillNotBeforeMs = 0
  #timer: NodeJS.Timeout | undefined
  #timerDueMs = Infinity
  #stopped = false

  constructor (deps: { store: PspStore, runtime: RuntimeControl, limits: PspLimits, metrics: PspMetrics, log: Logger, secret: string }) {
    this.#store = deps.store
    this.#runtime = deps.runtime
    this.#limits = deps.limits
    this.#metrics = deps.metrics
    this.#log = deps.log
    this.#secret = deps.secret
    this.#agent = new Agent({
      connections: deps.limits.webhookDeliveriesInFlightMax,
      connectTimeout: deps.limits.webhookDeliveryTimeoutMs,
      headersTimeout: deps.limits.webhookDeliveryTimeoutMs,
      bodyTimeout: deps.limits.webhookDeliveryTimeoutMs,
    })
  }

  get inFlight (): number {
    return this.#deliveries.size
  }

  /** Entries in the in-memory due queue (not in flight). */
  get queued (): number {
    return this.#queued.size
  }

  /** Reads the outbox left by a previous run, and starts delivering. */
  start (): void {
    this.#spilled = true
    this.#pump()
  }

  /** Entries just written (their batch is on disk). */
  enqueue (events: readonly QueuedEvent[]): void {
    if (events.length === 0) return
    for (const event of events) this.#push(event)
    this.#pump()
  }

  /** The configuration changed: a base URL may just have been set, or delays shortened. */
  wake (): void {
    this.#pump()
  }

  #push (event: QueuedEvent): void {
    const seq = event.seq
    if (this.#stopped || this.#queued.has(seq) || this.#deliveries.has(seq) || this.#removing.has(seq)) return
    if (this.#queued.size + this.#deliveries.size >= this.#limits.webhookQueueEntriesMax) {
      this.#spilled = true
      return
    }
    this.#requeue({ dueMs: event.dueMs, order: seq, seq, attempts: event.attempts, afterSeq: event.afterSeq })
  }

  #requeue (item: QueuedItem): void {
    this.#heap.push(item)
    this.#queued.set(item.seq, item)
  }

  /** Starts every delivery that is due and has a slot, then sleeps until the next due time. */
  #pump (): void {
    if (this.#stopped) return
    if (this.#runtime.config.webhookBaseUrl !== null) {
      const nowMs = Date.now()
      while (this.#deliveries.size < this.#limits.webhookDeliveriesInFlightMax) {
        const item = this.#heap.peek()
        if (item === undefined || item.dueMs > nowMs) break
        this.#heap.pop()
        if (item.afterSeq !== undefined && this.#stillInOutbox(item.afterSeq)) {
          // A stale (reordered) event waits until the newer one has left the outbox.
          item.dueMs = nowMs + this.#limits.webhookReorderRecheckMs
          this.#heap.push(item)
          continue
        }
        this.#queued.delete(item.seq)
        const delivery = this.#deliver(item).catch((error: unknown) => {
          // Not a receiver's failure (an unreadable entry?): the entry stays, tried again much later.
          this.#log.error({ err: error, seq: item.seq }, 'webhook delivery failed unexpectedly')
          item.dueMs = Date.now() + this.#limits.webhookRetryMaxMs
          this.#requeue(item)
        }).finally(() => {
          this.#deliveries.delete(item.seq)
          this.#pump()
        })
        this.#deliveries.set(item.seq, delivery)
      }
      this.#armTimer(nowMs)
    }
    this.#maybeRefill()
  }

  #stillInOutbox (seq: number): boolean {
    if (this.#queued.has(seq) || this.#deliveries.has(seq)) return true
    if (this.#removing.has(seq)) return false
    // Not in memory: it may be among the entries that are on disk only.
    return (this.#spilled || this.#refilling !== undefined) && this.#store.has(keys.outbox(seq))
  }

  #armTimer (nowMs: number): void {
    const next = this.#heap.peek()
    if (next === undefined || this.#deliveries.size >= this.#limits.webhookDeliveriesInFlightMax) {
      // Nothing waits, or a finishing delivery pumps again.
      clearTimeout(this.#timer)
      this.#timer = undefined
      this.#timerDueMs = Infinity
      return
    }
    if (this.#timer !== undefined && this.#timerDueMs <= next.dueMs) return
    clearTimeout(this.#timer)
    this.#timerDueMs = next.dueMs
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#timerDueMs = Infinity
      this.#pump()
    }, Math.max(0, next.dueMs - nowMs))
    this.#timer.unref()
  }

  #maybeRefill (): void {
    if (!this.#spilled || this.#refilling !== undefined || this.#stopped) return
    if (this.#queued.size + this.#deliveries.size > this.#limits.webhookQueueEntriesMax / 2) return
    if (Date.now() < this.#refillNotBeforeMs) return
    this.#refilling = this.#refill().finally(() => {
      this.#refilling = undefined
      for (const seq of this.#removedDuringRefill) this.#removing.delete(seq)
      this.#removedDuringRefill = []
      this.#pump()
    })
  }

  /** Reads back, in sequence order, the entries on disk that are not in memory, up to the bound. */
  async #refill (): Promise<void> {
    this.#spilled = false
    const iterator = this.#store.db.iterator({ gte: keys.outboxPrefix, lt: keys.outboxPrefix + rangeEnd })
    try {
      for (;;) {
        const chunk = await iterator.nextv(this.#limits.webhookRefillChunkEntries)
        if (chunk.length === 0 || this.#stopped) return
        for (const [, value] of chunk) {
          if (this.#queued.size + this.#deliveries.size >= this.#limits.webhookQueueEntriesMax) {
            // Full: the rest stays on disk until the queue is down to half again.
            this.#spilled = true
            return
          }
          this.#push(decodeQueuedEvent(value))
        }
        this.#pump()
      }
    } catch (error) {
      this.#spilled = true
      this.#refillNotBeforeMs = Date.now() + this.#limits.webhookRefillRetryMs
      setTimeout(() => this.#pump(), this.#limits.webhookRefillRetryMs).unref()
      // Closing the store under a scan is the normal end of a shutdown, not an error.
      if (!this.#stopped) this.#log.error({ err: error }, 'webhook outbox refill failed; retrying')
    } finally {
      await iterator.close()
    }
  }

  async #deliver (item: QueuedItem): Promise<void> {
    const raw = this.#store.get(keys.outbox(item.seq))
    if (raw === undefined) {
      this.#log.error({ seq: item.seq }, 'queued webhook has no outbox entry; skipped')
      return
    }
    const entry = decodeOutboxEntry(raw)
    const baseUrl = this.#runtime.config.webhookBaseUrl
    if (baseUrl === null) {
      this.#requeue(item)
      return
    }
    const url = baseUrl + webhookPathPrefix + encodeURIComponent(entry.reference)
    this.#metrics.count('webhookAttempts')
    let failure: string | undefined
    // A timer cleared on completion, not AbortSignal.timeout: that one fires for every delivery
    // (10 s later, long after it succeeded) and builds a DOMException with a stack each time.
    const attempt = new AbortController()
    const deadline = setTimeout(() => attempt.abort(new Error(`no complete answer within ${this.#limits.webhookDeliveryTimeoutMs} ms`)),
      this.#limits.webhookDeliveryTimeoutMs)
    this.#attemptControllers.add(attempt)
    if (this.#cutOff) attempt.abort()
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Ringpay-Sandbox-PSP/1.0',
          [signatureHeaderName.toLowerCase()]: signWebhook(this.#secret, unixSeconds(Date.now()), entry.body),
        },
        body: entry.body,
        // One bound for the whole attempt, whatever phase is slow; shutdown cuts it short too.
        signal: attempt.signal,
      })
      await res.body.dump()
      if (res.statusCode < 200 || res.statusCode > 299) failure = `status ${res.statusCode}`
    } catch (error) {
      failure = (error as Error).message
    } finally {
      clearTimeout(deadline)
      this.#attemptControllers.delete(attempt)
    }
    if (failure === undefined) {
      this.#remove(item.seq, { webhooksDelivered: 1, webhooksPending: -1 })
      return
    }
    this.#metrics.count('webhookAttemptFailures')
    // A delivery cut off by shutdown is not the receiver's fault: it stays due, uncounted.
    if (this.#stopped) return
    const attempts = item.attempts + 1
    if (attempts >= this.#limits.webhookAttemptsMax) {
      this.#log.warn({ event_id: entry.event_id, checkout_id: entry.reference, attempts, failure }, 'webhook given up')
      this.#remove(item.seq, { webhooksFailed: 1, webhooksPending: -1 })
      return
    }
    const dueAtMs = Date.now() + retryDelayMs(this.#limits, attempts, this.#runtime.random)
    this.#log.debug({ event_id: entry.event_id, checkout_id: entry.reference, attempts, failure, due_at_ms: dueAtMs }, 'webhook retry scheduled')
    item.dueMs = dueAtMs
    item.attempts = attempts
    this.#requeue(item)
    // Lost in a crash, the retry only happens sooner and the attempt goes uncounted.
    this.#store.write({ ops: [{ type: 'put', key: keys.outbox(entry.seq), value: encodeOutboxEntry({ ...entry, attempts, due_at_ms: dueAtMs }) }] }, { notAfterMs: Date.now() + this.#limits.deferredWriteFlushMs })
      .catch((error: unknown) => {
        this.#log.error({ err: error, seq: entry.seq }, 'could not record a webhook retry')
      })
  }

  /** The entry has left the outbox (delivered or given up): gone from memory now, from disk soon. */
  #remove (seq: number, counters: CounterDeltas): void {
    this.#removing.add(seq)
    const removed = (): void => {
      if (this.#refilling !== undefined) this.#removedDuringRefill.push(seq)
      else this.#removing.delete(seq)
    }
    this.#store.write({ ops: [{ type: 'del', key: keys.outbox(seq) }], counters }, { notAfterMs: Date.now() + this.#limits.deferredWriteFlushMs }).then(removed, (error: unknown) => {
      // Still on disk: sent again after a restart (at least once).
      this.#log.error({ err: error, seq }, 'could not remove a delivered webhook from the outbox')
      removed()
    })
  }

  /**
   * Stops picking entries, gives deliveries in flight until `deadlineMs` to finish, then cuts the
   * rest (they stay in the outbox and go out after the restart).
   */
  async stop (deadlineMs: number): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    const cutAll = (): void => {
      this.#cutOff = true
      for (const attempt of this.#attemptControllers) attempt.abort()
    }
    const cut = setTimeout(cutAll, Math.max(0, deadlineMs - Date.now()))
    await this.#refilling
    await Promise.allSettled(this.#deliveries.values())
    clearTimeout(cut)
    cutAll()
    await this.#agent.close()
  }
}
