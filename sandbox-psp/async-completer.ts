// Completes async (pending) charges, and async refunds (refund-service.ts completeRefund), when their delay is up: pending -> succeeded | failed, with the
// settlement index entry and the webhook event in the same batch. The schedule is durable
// (a/<due>/<charge id>), so a charge left pending by a restart is completed after it.
// The same schedule voids authorizations (manual capture) not captured within their window:
// requires_capture -> canceled (`authorization_expired`), with its `charge.canceled` event.

import type { Logger } from '../lib/log.ts'
import { authorizationExpired, cancel, fail, succeedOrAuthorize, type Charge } from './charge.ts'
import type { RuntimeControl } from './faults.ts'
import type { PspLimits } from './limits.ts'
import { ruleFor } from './rules.ts'
import { completeRefund, isRefundId } from './refund-service.ts'
import { keys, parseDueKey, rangeEnd, type CounterDeltas, type Op, type PspStore } from './store.ts'
import { encodeSettlementEntry } from './settlement.ts'
import { eventWrites, type QueuedEvent } from './webhook-events.ts'

/** After a failed pass (the disk refused a batch), try again this much later. */
const retryAfterFailureMs = 1_000
/** An expiry due while a capture or cancel of the charge is being written is looked at again this much later. */
const retryAfterActionMs = 100

export class AsyncCompleter {
  readonly #store: PspStore
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #log: Logger
  readonly #onWritten: (events: readonly QueuedEvent[]) => void
  #timer: NodeJS.Timeout | undefined
  #timerDueMs = Infinity
  #running: Promise<void> | undefined
  #again = false
  #stopped = false

  /** Charges a capture, cancel or customer decision is being written for (shared with ChargeService). */
  readonly #actionsInProgress: Set<string>

  constructor (deps: { store: PspStore, runtime: RuntimeControl, limits: PspLimits, log: Logger, onWritten: (events: readonly QueuedEvent[]) => void, actionsInProgress?: Set<string> }) {
    this.#actionsInProgress = deps.actionsInProgress ?? new Set<string>()
    this.#store = deps.store
    this.#runtime = deps.runtime
    this.#limits = deps.limits
    this.#log = deps.log
    this.#onWritten = deps.onWritten
  }

  /** A pending charge is due at `dueMs` (or, at start-up, whatever is stored). */
  schedule (dueMs: number): void {
    if (this.#stopped || dueMs >= this.#timerDueMs) return
    clearTimeout(this.#timer)
    this.#timerDueMs = dueMs
    this.#timer = setTimeout(() => {
      this.#timerDueMs = Infinity
      this.#run()
    }, Math.max(0, dueMs - Date.now()))
    this.#timer.unref()
  }

  /** Completes what is due now, then sleeps until the next due entry. */
  start (): void {
    this.#run()
  }

  #run (): void {
    if (this.#stopped) return
    if (this.#running !== undefined) {
      this.#again = true
      return
    }
    this.#running = this.#completeDue().catch((error: unknown) => {
      this.#log.error({ err: error }, 'async charge completion failed; retrying')
      this.schedule(Date.now() + retryAfterFailureMs)
    }).finally(() => {
      this.#running = undefined
      if (this.#again) {
        this.#again = false
        this.#run()
      }
    })
  }

  async #completeDue (): Promise<void> {
    for (;;) {
      const nowMs = Date.now()
      const due = await this.#store.db.keys({
        gte: keys.asyncPrefix,
        lt: keys.asyncDueUntil(nowMs),
        limit: this.#limits.asyncCompletionBatchMax,
      }).all()
      if (due.length > 0) await this.#complete(due, nowMs)
      if (due.length < this.#limits.asyncCompletionBatchMax || this.#stopped) break
    }
    const next = await this.#store.db.keys({ gte: keys.asyncPrefix, lt: keys.asyncPrefix + rangeEnd, limit: 1 }).all()
    if (next[0] !== undefined) this.schedule(parseDueKey(next[0]).dueMs)
  }

  async #complete (dueKeys: readonly string[], nowMs: number): Promise<void> {
    const ops: Op[] = []
    const queued: QueuedEvent[] = []
    const counters: Required<Pick<CounterDeltas, 'pending' | 'succeeded' | 'failed'>> & CounterDeltas = { pending: 0, succeeded: 0, failed: 0 }
    // Authorizations voided here are actions on their charge, like a capture: held until written.
    const claimed: string[] = []
    for (const dueKey of dueKeys) {
      ops.push({ type: 'del', key: dueKey })
      const chargeId = parseDueKey(dueKey).rest
      if (isRefundId(chargeId)) {
        // An async refund shares the schedule: its end and event join this batch.
        const done = completeRefund(this.#store, this.#runtime, chargeId, nowMs)
        if (done === undefined) continue
        ops.push(...done.ops)
        queued.push(...done.queued)
        for (const [name, delta] of Object.entries(done.counters) as Array<[keyof CounterDeltas, number]>) {
          counters[name] = (counters[name] ?? 0) + delta
        }
        continue
      }
      const charge = this.#store.getCharge(chargeId)
      if (charge?.status === 'requires_capture') {
        if (this.#actionsInProgress.has(chargeId) || claimed.includes(chargeId)) {
          // A capture or void is being written: look again shortly (it usually wins).
          ops.push({ type: 'put', key: keys.asyncDue(nowMs + retryAfterActionMs, chargeId), value: '' })
          continue
        }
        this.#actionsInProgress.add(chargeId)
        claimed.push(chargeId)
        const voided = cancel(charge, nowMs, authorizationExpired)
        counters.requiresCapture = (counters.requiresCapture ?? 0) - 1
        counters.canceled = (counters.canceled ?? 0) + 1
        this.#log.info({ checkout_id: charge.reference, charge_id: chargeId }, 'authorization expired uncaptured: voided')
        this.#writeCharge(voided, nowMs, ops, queued, counters)
        continue
      }
      if (charge === undefined || charge.status !== 'pending') continue
      const rule = ruleFor(charge.payment_method)
      const outcome = rule?.outcome
      const final: Charge = outcome?.kind === 'async' && outcome.final.kind === 'failed'
        ? fail(charge, outcome.final.failure)
        : succeedOrAuthorize(charge, nowMs, rule?.capture?.authorizationWindowMs ?? this.#runtime.config.authorizationWindowMs)
      counters.pending--
      if (final.status === 'requires_capture') {
        // Authorized (capture false): voided at the end of its window unless captured first.
        ops.push({ type: 'put', key: keys.asyncDue(nowMs + (rule?.capture?.authorizationWindowMs ?? this.#runtime.config.authorizationWindowMs), final.id), value: '' })
        counters.requiresCapture = (counters.requiresCapture ?? 0) + 1
      } else if (final.status === 'succeeded') {
        ops.push({ type: 'put', key: keys.settlement(final.settled_on!, final.id), value: encodeSettlementEntry(final) })
        counters.succeeded++
      } else {
        counters.failed++
      }
      this.#writeCharge(final, nowMs, ops, queued, counters)
    }
    try {
      await this.#store.write({ ops, counters })
    } finally {
      for (const chargeId of claimed) this.#actionsInProgress.delete(chargeId)
    }
    this.#onWritten(queued)
  }

  /** The charge's new state and its webhook events, into the batch being built. */
  #writeCharge (final: Charge, nowMs: number, ops: Op[], queued: QueuedEvent[], counters: CounterDeltas): void {
    const json = JSON.stringify(final)
    ops.push({ type: 'put', key: keys.charge(final.id), value: json })
    const events = eventWrites(this.#store, this.#runtime, final, nowMs, json)
    ops.push(...events.ops)
    queued.push(...events.queued)
    for (const [name, delta] of Object.entries(events.counters) as Array<[keyof CounterDeltas, number]>) {
      counters[name] = (counters[name] ?? 0) + delta
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
  }
}
