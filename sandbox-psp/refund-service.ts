// POST /v1/refunds, minus HTTP: idempotency, simulated latency, fault injection, the refund rule of
// the charge's payment method, and the durable write (refund, idempotency record, indexes and
// webhook event in one batch). Like a charge, the answer comes only after the refund is on disk,
// so "refunded, answer lost" is exactly the timeout-after-refund case.
//
// Order of a request:
//   1. concurrency bound              (429)
//   2. injected rate limit            (429)  never refunds
//   3. key in progress?               (409)
//   4. simulated latency
//   5. injected 500/503                      never refunds
//   6. replay or mismatch             (200 / 422)
//   7. the charge's refund rule: 5xx once   first attempt for the key: durable marker, 500
//   8. checks, then refund            (201)  under the charge's lock: succeeded charge, amount
//                                            ≤ what pending and succeeded refunds leave
// Refunds of one charge are written one at a time (a promise chain per charge), so two requests
// can never both take the last of a charge's amount.

import { amountTaken } from './charge.ts'
import { newRefund, refundFingerprint, settleRefund, refundDeclined, type Refund, type RefundParams, type RefundStatus } from './refund.ts'
import { RequestAdmission } from './admission.ts'
import { injectedServerError, PspError } from './errors.ts'
import type { RuntimeControl } from './faults.ts'
import { randomId } from './ids.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'
import { defaultRefundRule, ruleFor, type RefundRule } from './rules.ts'
import { encodeRefundSettlementEntry, refundSettlementKey } from './settlement.ts'
import { keys, type CounterDeltas, type Op, type PspStore } from './store.ts'
import { refundEventWrites, type QueuedEvent } from './webhook-events.ts'

export type RefundCreateResult =
  | { kind: 'created', refund: Refund, holdResponse: boolean }
  | { kind: 'replayed', refund: Refund }

interface RefundIdempotencyRecord {
  refund_id: string
  fingerprint: string
}

const counterOf: Record<RefundStatus, 'refundsSucceeded' | 'refundsFailed' | 'refundsPending'> = {
  succeeded: 'refundsSucceeded',
  failed: 'refundsFailed',
  pending: 'refundsPending',
}

export class RefundService {
  readonly #store: PspStore
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #metrics: PspMetrics
  readonly #onWritten: (asyncDueMs: number | undefined, events: readonly QueuedEvent[]) => void
  /** The tail of each charge's chain of refund writes; dropped when the chain is idle. */
  readonly #chargeChains = new Map<string, Promise<unknown>>()
  /** The same admission and latency as charges: nothing grows without bound. */
  readonly #admission: RequestAdmission

  constructor (deps: {
    store: PspStore
    runtime: RuntimeControl
    limits: PspLimits
    metrics: PspMetrics
    onWritten: (asyncDueMs: number | undefined, events: readonly QueuedEvent[]) => void
  }) {
    this.#store = deps.store
    this.#runtime = deps.runtime
    this.#limits = deps.limits
    this.#metrics = deps.metrics
    this.#onWritten = deps.onWritten
    this.#admission = new RequestAdmission(deps)
  }

  get inFlight (): number {
    return this.#admission.inFlight
  }

  stop (): void {
    this.#admission.stop()
  }

  async create (idempotencyKey: string, params: RefundParams): Promise<RefundCreateResult> {
    return this.#admission.run(idempotencyKey, 'refundAttempts', () => this.#createWithKey(idempotencyKey, params))
  }

  async #createWithKey (idempotencyKey: string, params: RefundParams): Promise<RefundCreateResult> {
    const latencyMs = this.#runtime.latencyMs()
    const injected = this.#runtime.serverError()
    await this.#admission.latency(latencyMs, 'refuse')
    if (injected !== undefined) {
      this.#metrics.count('injected5xx')
      throw injectedServerError(injected)
    }
    const fingerprint = refundFingerprint(params)
    const existing = this.#idempotency(idempotencyKey)
    if (existing !== undefined) {
      if (existing.fingerprint !== fingerprint) {
        this.#metrics.count('idempotencyMismatches')
        throw new PspError('idempotency_key_mismatch')
      }
      const refund = this.#store.getRefund(existing.refund_id)
      if (refund === undefined) throw new Error(`refund idempotency record of ${idempotencyKey} names a missing refund`)
      this.#metrics.count('idempotentReplays')
      return { kind: 'replayed', refund }
    }
    const charge = this.#store.getCharge(params.charge)
    if (charge === undefined) throw new PspError('resource_missing', { param: 'charge', message: `No such charge: '${params.charge.slice(0, 64)}'` })
    const rule: RefundRule = ruleFor(charge.payment_method)?.refund ?? defaultRefundRule
    if (rule.fault === 'error_5xx_once' && !this.#store.has(keys.refundFault5xxOnce(idempotencyKey))) {
      // Durable, so a restart between the attempts does not fail the key twice.
      await this.#store.write({ ops: [{ type: 'put', key: keys.refundFault5xxOnce(idempotencyKey), value: '' }] })
      this.#metrics.count('rule5xxOnce')
      throw new PspError('internal_error')
    }
    const refund = await this.#underChargeLock(charge.id, () => this.#refund(idempotencyKey, params, rule, fingerprint))
    const holdResponse = rule.fault === 'timeout_after_refund' || this.#runtime.timeoutAfterCharge()
    if (holdResponse) this.#metrics.count('injectedTimeouts')
    return { kind: 'created', refund, holdResponse }
  }

  #idempotency (key: string): RefundIdempotencyRecord | undefined {
    const raw = this.#store.get(keys.refundIdempotency(key))
    return raw === undefined ? undefined : JSON.parse(raw) as RefundIdempotencyRecord
  }

  /** Runs `work` after every earlier refund write of the charge has finished. */
  async #underChargeLock<T> (chargeId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#chargeChains.get(chargeId) ?? Promise.resolve()
    const run = previous.then(work, work)
    const tail = run.catch(() => {})
    this.#chargeChains.set(chargeId, tail)
    try {
      return await run
    } finally {
      if (this.#chargeChains.get(chargeId) === tail) this.#chargeChains.delete(chargeId)
    }
  }

  /** Checks the charge as it is now (under its lock) and writes the refund durably. */
  async #refund (idempotencyKey: string, params: RefundParams, rule: RefundRule, fingerprint: string): Promise<Refund> {
    const charge = this.#store.getCharge(params.charge)
    if (charge === undefined || charge.status !== 'succeeded') {
      throw new PspError('charge_not_refundable', { param: 'charge', message: `This charge is ${charge?.status ?? 'missing'}; only a succeeded charge can be refunded` })
    }
    const refundIds = this.#store.idList(keys.chargeRefunds(charge.id))
    let committed = 0
    for (const id of refundIds) {
      const earlier = this.#store.getRefund(id)
      if (earlier !== undefined && earlier.status !== 'failed') committed += earlier.amount
    }
    // A captured authorization is refunded up to what was captured, not what was authorized.
    const taken = amountTaken(charge)
    if (params.amount > taken - committed) {
      throw new PspError('refund_amount_too_large', {
        param: 'amount',
        message: `Refund amount (${params.amount}) is greater than what is left to refund (${taken - committed})`,
      })
    }
    const nowMs = Date.now()
    const status: RefundStatus = rule.outcome === 'succeeded' ? 'succeeded' : rule.outcome === 'failed' ? 'failed' : 'pending'
    const refund = newRefund(randomId('re'), idempotencyKey, params, charge, status, nowMs)
    const json = JSON.stringify(refund)
    const keyRefunds = this.#store.idList(keys.refundIndex(idempotencyKey))
    const ops: Op[] = [
      { type: 'put', key: keys.refund(refund.id), value: json },
      { type: 'put', key: keys.refundIdempotency(idempotencyKey), value: JSON.stringify({ refund_id: refund.id, fingerprint }) },
      { type: 'put', key: keys.refundIndex(idempotencyKey), value: JSON.stringify([...keyRefunds, refund.id]) },
      { type: 'put', key: keys.chargeRefunds(charge.id), value: JSON.stringify([...refundIds, refund.id]) },
    ]
    if (refund.status === 'succeeded') ops.push({ type: 'put', key: refundSettlementKey(refund), value: encodeRefundSettlementEntry(refund) })
    let asyncDueMs: number | undefined
    if (refund.status === 'pending') {
      asyncDueMs = nowMs + this.#runtime.config.asyncDelayMs
      ops.push({ type: 'put', key: keys.asyncDue(asyncDueMs, refund.id), value: '' })
    }
    const events = refundEventWrites(this.#store, this.#runtime, refund, nowMs, json)
    ops.push(...events.ops)
    const counters: CounterDeltas = {
      ...events.counters,
      refundsTotal: 1,
      [counterOf[refund.status]]: 1,
      ...(keyRefunds.length === 1 ? { keysWithMultipleRefunds: 1 } : {}),
    }
    await this.#store.write({ ops, counters })
    this.#onWritten(asyncDueMs, events.queued)
    return refund
  }
}

/** Whether an a/ schedule entry names a refund (the async completer serves charges and refunds). */
export function isRefundId (id: string): boolean {
  return id.startsWith('re_')
}

/**
 * The async completer's part for a due refund: pending -> its final status by the charge's
 * refund rule, with its webhook event. Ops and counters join the completer's batch.
 */
export function completeRefund (store: PspStore, runtime: RuntimeControl, refundId: string, nowMs: number):
{ ops: Op[], counters: CounterDeltas, queued: QueuedEvent[] } | undefined {
  const refund = store.getRefund(refundId)
  if (refund === undefined || refund.status !== 'pending') return undefined
  const charge = store.getCharge(refund.charge)
  const rule = (charge === undefined ? undefined : ruleFor(charge.payment_method)?.refund) ?? defaultRefundRule
  const final = settleRefund(refund, rule.outcome === 'async_failed' ? refundDeclined : undefined, nowMs)
  const json = JSON.stringify(final)
  const events = refundEventWrites(store, runtime, final, nowMs, json)
  const ops: Op[] = [{ type: 'put', key: keys.refund(final.id), value: json }]
  // In the same batch as the success: the settlement report never misses a succeeded refund.
  if (final.status === 'succeeded') ops.push({ type: 'put', key: refundSettlementKey(final), value: encodeRefundSettlementEntry(final) })
  return {
    ops: [...ops, ...events.ops],
    counters: { ...events.counters, refundsPending: -1, [counterOf[final.status]]: 1 },
    queued: events.queued,
  }
}
