// POST /v1/charges, minus HTTP: idempotency, simulated latency, fault injection, the outcome rule
// and the durable write. The answer (and the webhook event) is only produced after the charge is
// on disk, so a crash between "charged" and "answered" is exactly the timeout-after-charge case.
//
// Order of a request, and why:
//   1. concurrency bound         (429)  nothing grows without bound
//   2. injected rate limit       (429)  real rate limiters answer before any work
//   3. key in progress?          (409)  Stripe's concurrent-request answer
//   4. simulated latency                the key stays in progress meanwhile
//   5. injected 500/503                 also on retries, as on a real PSP; never charges
//   6. replay or mismatch        (200 / 422)
//   7. pm_card_5xx_once                 first attempt for the key: durable marker, 500, no charge
//   8. charge, write durably     (201)  then maybe hold the answer (timeout after charge)
// When steps 5-7 cannot refuse (no injected error drawn, no record for the key, no 5xx-once due),
// step 8's write starts with step 4 and only has to be on disk when the latency ends: the group
// committer batches the charges of that window. The answer still comes after both.

import { liveIdempotency } from './key-retention.ts'
import { authorize, cancel, capture, customerDeclined, fail, newCharge, paramsFingerprint, succeedOrAuthorize, type Charge, type ChargeParams } from './charge.ts'
import type { CustomerDecision, CustomerPages } from './customer-action.ts'
import { RequestAdmission } from './admission.ts'
import { injectedServerError, PspError } from './errors.ts'
import type { RuntimeControl } from './faults.ts'
import { randomId } from './ids.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'
import { ruleFor, type PaymentMethodRule } from './rules.ts'
import { keys, type CounterDeltas, type Op, type PspStore } from './store.ts'
import { encodeSettlementEntry } from './settlement.ts'
import { eventWrites, type QueuedEvent } from './webhook-events.ts'

export type CancelResult = { kind: 'canceled' | 'replayed', charge: Charge }
/** `holdResponse`: captured durably, the answer held (the capture's injected timeout). */
export type CaptureResult = { kind: 'captured', charge: Charge, holdResponse: boolean } | { kind: 'replayed', charge: Charge }
/** `replayed`: the charge was no longer awaiting the customer; it is answered as it is. */
export type CustomerActionResult = { kind: 'completed' | 'replayed', charge: Charge }

export type CreateResult =
  /** `json`: the charge as stored, to answer with (serialised once). */
  | { kind: 'created', charge: Charge, json: string, holdResponse: boolean }
  | { kind: 'replayed', charge: Charge }

interface WrittenCharge {
  charge: Charge
  json: string
  asyncDueMs: number | undefined
  events: QueuedEvent[]
}

const statusCounter = {
  succeeded: 'succeeded',
  failed: 'failed',
  pending: 'pending',
  requires_action: 'requiresAction',
  canceled: 'canceled',
  requires_capture: 'requiresCapture',
} as const

export class ChargeService {
  readonly #store: PspStore
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #metrics: PspMetrics
  readonly #onWritten: (charge: Charge, asyncDueMs: number | undefined, events: readonly QueuedEvent[]) => void
  /**
   * Charges whose cancel or customer decision is being written: a second action meanwhile is told
   * to retry (409), so a cancel and the customer's approval never both apply. Bounded by
   * chargeRequestsInFlightMax.
   */
  readonly #actionsInProgress: Set<string>
  readonly #customerPages: CustomerPages
  /** The bound on requests in flight, one request per key at a time, the simulated latency. */
  readonly #admission: RequestAdmission

  constructor (deps: {
    store: PspStore
    runtime: RuntimeControl
    limits: PspLimits
    metrics: PspMetrics
    onWritten: (charge: Charge, asyncDueMs: number | undefined, events: readonly QueuedEvent[]) => void
    customerPages: CustomerPages
    /** Shared with the async completer, whose authorization expiry is an action on a charge too. */
    actionsInProgress?: Set<string>
  }) {
    this.#actionsInProgress = deps.actionsInProgress ?? new Set<string>()
    this.#customerPages = deps.customerPages
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

  get keysInProgress (): number {
    return this.#admission.keysInProgress
  }

  /**
   * POST /v1/charges/{id}/cancel: a charge awaiting customer action becomes `canceled` (durably,
   * with its `charge.canceled` event); one already canceled is answered as it is (idempotent).
   * Nothing else moves a `requires_action` charge here, and the async completer only moves
   * `pending` ones, so the only race is two cancels of one charge: the second is refused 409 and
   * retried by its caller. Any other status is final or being settled: `charge_not_cancelable`.
   */
  async cancel (chargeId: string): Promise<CancelResult> {
    const charge = this.#chargeForAction(chargeId)
    if (charge.status === 'canceled') return { kind: 'replayed', charge }
    if (charge.status !== 'requires_action' && charge.status !== 'requires_capture') {
      throw new PspError('charge_not_cancelable', { message: `This charge is ${charge.status}; only a requires_action or requires_capture charge can be canceled` })
    }
    this.#actionsInProgress.add(chargeId)
    try {
      const nowMs = Date.now()
      // At requires_capture this is a void: the authorization is released, nothing is taken.
      const canceled = cancel(charge, nowMs)
      const json = JSON.stringify(canceled)
      const events = eventWrites(this.#store, this.#runtime, canceled, nowMs, json)
      const counters: CounterDeltas = { ...events.counters, [statusCounter[charge.status]]: -1, canceled: 1 }
      await this.#store.write({ ops: [{ type: 'put', key: keys.charge(chargeId), value: json }, ...events.ops], counters })
      this.#onWritten(canceled, undefined, events.queued)
      return { kind: 'canceled', charge: canceled }
    } finally {
      this.#actionsInProgress.delete(chargeId)
    }
  }

  /**
   * The customer approved or declined on the charge's page: a requires_action charge becomes
   * succeeded (settling today) or failed, durably with its webhook event. Serialised with a cancel
   * of the same charge (one action per charge at a time), so exactly one of them wins; a charge no
   * longer awaiting the customer is answered as it is (a second click, a canceled charge).
   */
  async completeCustomerAction (chargeId: string, decision: CustomerDecision): Promise<CustomerActionResult> {
    const charge = this.#chargeForAction(chargeId)
    if (charge.status !== 'requires_action') return { kind: 'replayed', charge }
    this.#actionsInProgress.add(chargeId)
    try {
      const nowMs = Date.now()
      const final = decision === 'approve' ? succeedOrAuthorize(charge, nowMs, this.#authorizationWindowMs(charge)) : fail(charge, customerDeclined)
      const json = JSON.stringify(final)
      const ops: Op[] = [{ type: 'put', key: keys.charge(chargeId), value: json }]
      if (final.status === 'succeeded') {
        ops.push({ type: 'put', key: keys.settlement(final.settled_on!, final.id), value: encodeSettlementEntry(final) })
      }
      const events = eventWrites(this.#store, this.#runtime, final, nowMs, json)
      ops.push(...events.ops)
      const counters: CounterDeltas = { ...events.counters, requiresAction: -1, [statusCounter[final.status]]: 1 }
      const expiryDueMs = this.#scheduleExpiry(final, ops)
      await this.#store.write({ ops, counters })
      this.#onWritten(final, expiryDueMs, events.queued)
      return { kind: 'completed', charge: final }
    } finally {
      this.#actionsInProgress.delete(chargeId)
    }
  }

  /**
   * POST /v1/charges/{id}/capture (manual capture): an authorization (`requires_capture`) is
   * captured for `amount` (default all of it; the rest is released) and becomes succeeded, settling
   * today for what was captured, durably with its `charge.succeeded` event. Idempotent by its key:
   * a repeat with the key of the capture made is answered with the charge as it is (`replayed`);
   * another capture of a captured charge is `charge_already_captured`, of anything else not
   * awaiting capture `charge_not_capturable`. Serialised with a cancel (void) and the window's
   * expiry of the same charge, so exactly one of them applies. Faults as for charges: injected
   * 500/503 and rate limits (never capturing), and the token's capture faults (rules.ts).
   */
  async capture (chargeId: string, idempotencyKey: string, amount: number | undefined): Promise<CaptureResult> {
    return this.#admission.run(idempotencyKey, 'attempts', async () => {
      const latencyMs = this.#runtime.latencyMs()
      const injected = this.#runtime.serverError()
      await this.#admission.latency(latencyMs, 'refuse')
      if (injected !== undefined) {
        this.#metrics.count('injected5xx')
        throw injectedServerError(injected)
      }
      const charge = this.#chargeForAction(chargeId)
      if (charge.status === 'succeeded' && charge.capture_method === 'manual') {
        if (charge.capture_idempotency_key === idempotencyKey) {
          if (amount !== undefined && amount !== charge.amount_captured) {
            this.#metrics.count('idempotencyMismatches')
            throw new PspError('idempotency_key_mismatch')
          }
          this.#metrics.count('idempotentReplays')
          return { kind: 'replayed', charge }
        }
        throw new PspError('charge_already_captured', { message: `This charge was already captured (${charge.amount_captured ?? 0})` })
      }
      if (charge.status !== 'requires_capture') {
        throw new PspError('charge_not_capturable', { message: `This charge is ${charge.status}; only a requires_capture charge can be captured` })
      }
      const captureAmount = amount ?? charge.amount
      if (captureAmount > charge.amount) {
        throw new PspError('capture_amount_too_large', { param: 'amount', message: `Capture amount (${captureAmount}) is greater than the authorized ${charge.amount}` })
      }
      const fault = ruleFor(charge.payment_method)?.capture?.fault
      if (fault === 'error_5xx_once' && !this.#store.has(keys.fault5xxOnce(`capture/${idempotencyKey}`))) {
        // Durable, so a restart between the attempts does not fail the key twice.
        await this.#store.write({ ops: [{ type: 'put', key: keys.fault5xxOnce(`capture/${idempotencyKey}`), value: '' }] })
        this.#metrics.count('rule5xxOnce')
        throw new PspError('internal_error')
      }
      this.#actionsInProgress.add(chargeId)
      try {
        const nowMs = Date.now()
        const captured = capture(charge, captureAmount, idempotencyKey, nowMs)
        const json = JSON.stringify(captured)
        const ops: Op[] = [
          { type: 'put', key: keys.charge(chargeId), value: json },
          { type: 'put', key: keys.settlement(captured.settled_on!, captured.id), value: encodeSettlementEntry(captured) },
        ]
        const events = eventWrites(this.#store, this.#runtime, captured, nowMs, json)
        ops.push(...events.ops)
        await this.#store.write({ ops, counters: { ...events.counters, requiresCapture: -1, succeeded: 1 } })
        this.#onWritten(captured, undefined, events.queued)
        // Only the first attempt can get here for a key (a retry is a replay): the fault is once.
        const holdResponse = fault === 'timeout_after_capture' || this.#runtime.timeoutAfterCharge()
        if (holdResponse) this.#metrics.count('injectedTimeouts')
        return { kind: 'captured', charge: captured, holdResponse }
      } finally {
        this.#actionsInProgress.delete(chargeId)
      }
    })
  }

  /** The authorization window of a charge's token (rules.ts), else the configured one. */
  #authorizationWindowMs (charge: Charge): number {
    return ruleFor(charge.payment_method)?.capture?.authorizationWindowMs ?? this.#runtime.config.authorizationWindowMs
  }

  /**
   * An authorization's expiry joins the async schedule (a/<due>/<charge id>, async-completer.ts),
   * in the same batch as the charge: `ops` gains its entry. Returns when it is due, or undefined.
   */
  #scheduleExpiry (charge: Charge, ops: Op[]): number | undefined {
    if (charge.status !== 'requires_capture' || charge.capture_before === undefined) return undefined
    const dueMs = Date.now() + this.#authorizationWindowMs(charge)
    ops.push({ type: 'put', key: keys.asyncDue(dueMs, charge.id), value: '' })
    return dueMs
  }

  /**
   * The charge a cancel or a customer's decision is about, once no other action on it is being
   * written (else 409, retried by the caller) and the bound on actions in flight allows one more
   * (the same bound as charges in flight: nothing grows without bound).
   */
  #chargeForAction (chargeId: string): Charge {
    if (this.#actionsInProgress.has(chargeId)) throw new PspError('idempotency_key_in_use')
    if (this.#actionsInProgress.size >= this.#limits.chargeRequestsInFlightMax) {
      this.#metrics.count('concurrencyRejections')
      throw new PspError('rate_limited', { message: 'Too many concurrent requests; retry later', retryAfterS: 1 })
    }
    const charge = this.#store.getCharge(chargeId)
    if (charge === undefined) throw new PspError('resource_missing', { param: 'id', message: `No such charge: '${chargeId.slice(0, 64)}'` })
    return charge
  }

  /** Cuts simulated latency short; requests still sleeping answer 503 shutting_down. */
  stop (): void {
    this.#admission.stop()
  }

  async create (idempotencyKey: string, params: ChargeParams, rule: PaymentMethodRule): Promise<CreateResult> {
    return this.#admission.run(idempotencyKey, 'attempts', () => this.#createWithKey(idempotencyKey, params, rule))
  }

  async #createWithKey (idempotencyKey: string, params: ChargeParams, rule: PaymentMethodRule): Promise<CreateResult> {
    const latencyMs = this.#runtime.latencyMs()
    // Drawn before the latency (the order of the draws is unchanged), acted on after it.
    const injected = this.#runtime.serverError()
    const fingerprint = paramsFingerprint(params)
    const retentionMs = this.#runtime.config.idempotencyKeyRetentionMs
    if (injected === undefined && liveIdempotency(this.#store, idempotencyKey, retentionMs, Date.now()) === undefined &&
      !(rule.fault === 'error_5xx_once' && !this.#store.has(keys.fault5xxOnce(idempotencyKey)))) {
      // A new charge: nothing the latency could change decides it (the key is ours until we answer),
      // so it is written while the latency runs, due on disk when the latency ends. The group
      // committer gathers the charges of that window into one fsynced batch. The answer and the
      // webhook still wait for both: a client sees the same timing as if the write came after.
      const written = this.#charge(idempotencyKey, params, rule, fingerprint, Date.now() + latencyMs)
      const [prepared] = await Promise.all([written, this.#admission.latency(latencyMs, 'finish')])
      return this.#answer(prepared, rule)
    }
    await this.#admission.latency(latencyMs, 'refuse')
    if (injected !== undefined) {
      this.#metrics.count('injected5xx')
      throw injectedServerError(injected)
    }
    const existing = liveIdempotency(this.#store, idempotencyKey, retentionMs, Date.now())
    if (existing !== undefined) {
      if (existing.fingerprint !== fingerprint) {
        this.#metrics.count('idempotencyMismatches')
        throw new PspError('idempotency_key_mismatch')
      }
      const charge = this.#store.getCharge(existing.charge_id)
      if (charge === undefined) throw new Error(`idempotency record of ${idempotencyKey} names a missing charge`)
      this.#metrics.count('idempotentReplays')
      // The charge as it is now: a retry after a timeout learns the latest status.
      return { kind: 'replayed', charge }
    }
    if (rule.fault === 'error_5xx_once' && !this.#store.has(keys.fault5xxOnce(idempotencyKey))) {
      // Durable, so a restart between the attempts does not fail the key twice.
      await this.#store.write({ ops: [{ type: 'put', key: keys.fault5xxOnce(idempotencyKey), value: '' }] })
      this.#metrics.count('rule5xxOnce')
      throw new PspError('internal_error')
    }
    return this.#answer(await this.#charge(idempotencyKey, params, rule, fingerprint, Date.now()), rule)
  }

  /** The charge is on disk: its events go to the dispatcher, and the answer may be held (injected timeout). */
  #answer (prepared: WrittenCharge, rule: PaymentMethodRule): CreateResult {
    this.#onWritten(prepared.charge, prepared.asyncDueMs, prepared.events)
    const holdResponse = rule.fault === 'timeout_after_charge' || this.#runtime.timeoutAfterCharge()
    if (holdResponse) this.#metrics.count('injectedTimeouts')
    return { kind: 'created', charge: prepared.charge, json: prepared.json, holdResponse }
  }

  /** Writes a new charge, with its idempotency record and events, durably by `notAfterMs`. */
  async #charge (idempotencyKey: string, params: ChargeParams, rule: PaymentMethodRule, fingerprint: string, notAfterMs: number): Promise<WrittenCharge> {
    const nowMs = Date.now()
    const outcome = rule.outcome
    const status = outcome.kind === 'async' ? 'pending' : outcome.kind
    let charge = newCharge(randomId('ch'), idempotencyKey, params, status === 'succeeded' && params.capture === false ? 'pending' : status, nowMs)
    // Authorize only (capture false): where the rule says succeeded, the charge waits for its capture.
    if (status === 'succeeded' && params.capture === false) charge = authorize(charge, nowMs, this.#authorizationWindowMs(charge))
    if (outcome.kind === 'failed') {
      charge = { ...charge, failure_code: outcome.failure.code, failure_message: outcome.failure.message }
    }
    if (charge.status === 'requires_action') {
      const url = this.#customerPages.urlFor(charge.id)
      if (url !== undefined) charge = { ...charge, next_action: { type: 'redirect_to_url', redirect_to_url: { url } } }
    }
    const json = JSON.stringify(charge)
    const ops: Op[] = [
      { type: 'put', key: keys.charge(charge.id), value: json },
      { type: 'put', key: keys.idempotency(idempotencyKey), value: JSON.stringify({ charge_id: charge.id, fingerprint }) },
    ]
    if (charge.status === 'succeeded') {
      ops.push({ type: 'put', key: keys.settlement(charge.settled_on!, charge.id), value: encodeSettlementEntry(charge) })
    }
    let asyncDueMs: number | undefined
    if (outcome.kind === 'async') {
      asyncDueMs = nowMs + this.#runtime.config.asyncDelayMs
      ops.push({ type: 'put', key: keys.asyncDue(asyncDueMs, charge.id), value: '' })
    }
    asyncDueMs = this.#scheduleExpiry(charge, ops) ?? asyncDueMs
    const events = eventWrites(this.#store, this.#runtime, charge, nowMs, json)
    ops.push(...events.ops)
    const counters: CounterDeltas = { ...events.counters, chargesTotal: 1, [statusCounter[charge.status]]: 1 }
    await this.#store.write({ ops, counters, indexCharges: [{ idempotencyKey, chargeId: charge.id, reference: charge.reference }] }, { notAfterMs })
    return { charge, json, asyncDueMs, events: events.queued }
  }
}
