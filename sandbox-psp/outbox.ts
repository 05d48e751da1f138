// Delivers the durable webhook outbox: at least once, at most `webhookDeliveriesInFlightMax` at a
// time, retrying non-2xx answers and timeouts with capped exponential backoff up to
// `webhookAttemptsMax` attempts. Because entries are only removed after a 2xx (or giving up), a
// PSP restart resumes where it stopped; a delivery cut off by the restart is sent again, which is
// what receivers must expect of any PSP anyway.
//
// Entries are found through the w/<due>/<seq> index, so a scan only reads what is due.

import { Agent, request } from 'undici'
import type { Logger } from '../lib/log.ts'
import { unixSeconds } from './charge.ts'
import type { RuntimeControl } from './faults.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'
import { signatureHeaderName, signWebhook } from './signature.ts'
import { keys, parseDueKey, type PspStore } from './store.ts'
import type { OutboxEntry } from './webhook-events.ts'

export const webhookPathPrefix = '/webhooks/psp/sandbox/'
const jitterFraction = 0.2

/** Backoff before attempt `attempts + 1`, given `attempts` already failed (>= 1). */
export function retryDelayMs (limits: PspLimits, attempts: number, random: () => number): number {
  const exponential = Math.min(limits.webhookRetryMaxMs, limits.webhookRetryBaseMs * 2 ** (attempts - 1))
  // Jitter spreads retries of many events that failed together (a receiver restart).
  return Math.max(1, Math.round(exponential * (1 - jitterFraction + 2 * jitterFraction * random())))
}

export class WebhookDispatcher {
  readonly #store: PspStore
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #metrics: PspMetrics
  readonly #log: Logger
  readonly #secret: string
  readonly #agent: Agent
  readonly #stopController = new AbortController()
  /** Deliveries in flight, by sequence. */
  readonly #deliveries = new Map<number, Promise<void>>()
  /** Sequences whose entry is being rewritten (deferred by reorder); not to be picked meanwhile. */
  readonly #moving = new Set<number>()
  /** Their writes (and removals of stale index keys), which shutdown waits for. */
  readonly #defers = new Set<Promise<void>>()
  #scanning = false
  #scanRun: Promise<void> | undefined
  #rescan = false
  #timer: NodeJS.Timeout | undefined
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

  /** Something may be due: new entries were written, or the configuration changed. */
  wake (): void {
    if (this.#stopped) return
    if (this.#scanning) {
      this.#rescan = true
      return
    }
    this.#scanning = true
    this.#scanRun = this.#scan().catch((error: unknown) => {
      this.#log.error({ err: error }, 'webhook outbox scan failed')
    }).finally(() => {
      this.#scanning = false
      if (this.#rescan) {
        this.#rescan = false
        this.wake()
      } else {
        this.#armTimer()
      }
    })
  }

  async #scan (): Promise<void> {
    do {
      this.#rescan = false
      if (this.#stopped || this.#runtime.config.webhookBaseUrl === null) return
      const free = this.#limits.webhookDeliveriesInFlightMax - this.#deliveries.size
      if (free <= 0) return
      const nowMs = Date.now()
      const due = await this.#store.db.keys({
        gte: keys.outboxDuePrefix,
        lt: keys.outboxDueUntil(nowMs),
        // Busy entries are still in the index; read past them.
        limit: free + this.#deliveries.size + this.#moving.size,
      }).all()
      let started = 0
      for (const dueKey of due) {
        if (started >= free || this.#stopped) break
        const seq = Number(parseDueKey(dueKey).rest)
        if (this.#deliveries.has(seq) || this.#moving.has(seq)) continue
        const raw = this.#store.get(keys.outbox(seq))
        const entry = raw === undefined ? undefined : JSON.parse(raw) as OutboxEntry
        // The iterator reads a snapshot taken before the await: a delivery or deferral that ended
        // meanwhile has moved the entry to another key or removed it. Acting on the stale key would
        // send the entry early and strand its current key, which nothing would ever remove; enough
        // of those at the head of the index fill `limit` and no scan reaches a real entry again.
        if (entry === undefined || keys.outboxDue(entry.due_at_ms, seq) !== dueKey) {
          this.#dropStaleKey(dueKey)
          continue
        }
        if (entry.after_seq !== undefined && this.#store.has(keys.outbox(entry.after_seq))) {
          this.#defer(entry, dueKey, nowMs)
          continue
        }
        const delivery = this.#deliver(entry, dueKey).catch((error: unknown) => {
          // The outcome was not recorded: the entry stays due and is tried again.
          this.#log.error({ err: error, seq }, 'could not record a webhook delivery outcome')
        }).finally(() => {
          this.#deliveries.delete(seq)
          this.wake()
        })
        this.#deliveries.set(seq, delivery)
        started++
      }
    } while (this.#rescan)
  }

  /** Removes an index key whose entry is gone or has moved (usually already deleted: a no-op). */
  #dropStaleKey (dueKey: string): void {
    const dropped = this.#store.write({ ops: [{ type: 'del', key: dueKey }] }).catch((error: unknown) => {
      this.#log.error({ err: error, key: dueKey }, 'could not remove a stale webhook index key')
    }).finally(() => {
      this.#defers.delete(dropped)
    })
    this.#defers.add(dropped)
  }

  /** A stale event waits until the newer one has left the outbox (delivered or given up). */
  #defer (entry: OutboxEntry, dueKey: string, nowMs: number): void {
    const dueAtMs = nowMs + this.#limits.webhookReorderRecheckMs
    this.#moving.add(entry.seq)
    const moved = this.#store.write({
      ops: [
        { type: 'del', key: dueKey },
        { type: 'put', key: keys.outboxDue(dueAtMs, entry.seq), value: '' },
        { type: 'put', key: keys.outbox(entry.seq), value: JSON.stringify({ ...entry, due_at_ms: dueAtMs }) },
      ],
    }).catch((error: unknown) => {
      this.#log.error({ err: error, seq: entry.seq }, 'could not defer a reordered webhook')
    }).finally(() => {
      this.#moving.delete(entry.seq)
      this.#defers.delete(moved)
      this.#armTimer()
    })
    this.#defers.add(moved)
  }

  async #deliver (entry: OutboxEntry, dueKey: string): Promise<void> {
    const baseUrl = this.#runtime.config.webhookBaseUrl
    if (baseUrl === null) return
    const url = baseUrl + webhookPathPrefix + encodeURIComponent(entry.reference)
    this.#metrics.count('webhookAttempts')
    let failure: string | undefined
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
        signal: AbortSignal.any([AbortSignal.timeout(this.#limits.webhookDeliveryTimeoutMs), this.#stopController.signal]),
      })
      await res.body.dump()
      if (res.statusCode < 200 || res.statusCode > 299) failure = `status ${res.statusCode}`
    } catch (error) {
      failure = (error as Error).message
    }
    if (failure === undefined) {
      await this.#store.write({
        ops: [{ type: 'del', key: keys.outbox(entry.seq) }, { type: 'del', key: dueKey }],
        counters: { webhooksDelivered: 1, webhooksPending: -1 },
      })
      return
    }
    this.#metrics.count('webhookAttemptFailures')
    // A delivery cut off by shutdown is not the receiver's fault: it stays due, uncounted.
    if (this.#stopped) return
    const attempts = entry.attempts + 1
    if (attempts >= this.#limits.webhookAttemptsMax) {
      this.#log.warn({ event_id: entry.event_id, checkout_id: entry.reference, attempts, failure }, 'webhook given up')
      await this.#store.write({
        ops: [{ type: 'del', key: keys.outbox(entry.seq) }, { type: 'del', key: dueKey }],
        counters: { webhooksFailed: 1, webhooksPending: -1 },
      })
      return
    }
    const dueAtMs = Date.now() + retryDelayMs(this.#limits, attempts, this.#runtime.random)
    this.#log.debug({ event_id: entry.event_id, checkout_id: entry.reference, attempts, failure, due_at_ms: dueAtMs }, 'webhook retry scheduled')
    await this.#store.write({
      ops: [
        { type: 'del', key: dueKey },
        { type: 'put', key: keys.outboxDue(dueAtMs, entry.seq), value: '' },
        { type: 'put', key: keys.outbox(entry.seq), value: JSON.stringify({ ...entry, attempts, due_at_ms: dueAtMs }) },
      ],
    })
  }

  /** Sleeps until the next entry is due, or `webhookIdlePollMs`, whichever comes first. */
  #armTimer (): void {
    if (this.#stopped || this.#scanning) return
    clearTimeout(this.#timer)
    const nowMs = Date.now()
    this.#store.db.keys({ gte: keys.outboxDuePrefix, lt: keys.outboxDuePrefix + '\uffff', limit: 1 }).all().then((first) => {
      if (this.#stopped) return
      const nextDueMs = first[0] === undefined ? Infinity : parseDueKey(first[0]).dueMs
      const waitMs = Math.max(0, Math.min(nextDueMs - nowMs, this.#limits.webhookIdlePollMs))
      clearTimeout(this.#timer)
      this.#timer = setTimeout(() => this.wake(), waitMs)
      this.#timer.unref()
    }, (error: unknown) => {
      // Closing the store under a peek is the normal end of a shutdown, not an error.
      if (!this.#stopped) this.#log.error({ err: error }, 'webhook outbox peek failed')
    })
  }

  /**
   * Stops picking entries, gives deliveries in flight until `deadlineMs` to finish, then cuts the
   * rest (they stay in the outbox and go out after the restart).
   */
  async stop (deadlineMs: number): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    const cut = setTimeout(() => this.#stopController.abort(), Math.max(0, deadlineMs - Date.now()))
    await this.#scanRun
    await Promise.allSettled([...this.#deliveries.values(), ...this.#defers])
    clearTimeout(cut)
    this.#stopController.abort()
    await this.#agent.close()
  }
}
