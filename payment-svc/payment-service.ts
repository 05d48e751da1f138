// The node's payment logic: create (idempotent), read, long-poll, and state transitions.
// A payment is its merchant's checkout id (issue #17 part 5): the same checkout id of two merchants
// is two payments, and everything per payment here (in-flight writes, claim waiters, long-polls)
// is keyed by the pair (lib/payment-id.ts paymentKey). Every write for one payment is serialised:
// it is "in flight" from admission until its batch is durable, and a second write for it in that
// window is refused rather than queued, so one batch never holds two writes for one payment and
// every write is checked against durable state.

import assert from 'node:assert/strict'
import { timingSafeEqual } from 'node:crypto'
import type { ChangeEvent, EventType, Payment, PaymentStatus, Refund, RefundStatus, WebhookReceipt } from '../lib/payment-codec.ts'
import { terminalStatuses } from '../lib/payment-codec.ts'
import { paymentKey } from '../lib/payment-id.ts'
import { captureConflict, captureRefusal, withCaptureRequested } from './capture.ts'
import { hashCreateRequest, type CreatePaymentRequest } from './create-request.ts'
import { ProblemError } from './errors.ts'
import { GroupCommitter } from './group-commit.ts'
import type { NodeLimits } from './limits.ts'
import { hashRefundRequest, type RefundRequest } from './refund-request.ts'
import { canceledChargeRefundKey, canTransitionRefund, findRefund, findRefundByKey, newRefundId, refundableAmount, withRefundUpdated } from './refunds.ts'
import { canTransition } from './state-machine.ts'
import type { CommittedChangeEvents, PaymentStore, PaymentWrite } from './store.ts'

export interface QueuedChange {
  payment: Payment
  type: EventType
  previousStatus: PaymentStatus | undefined
  actor: string
  webhook?: WebhookReceipt
  /** false: written without a change-log entry (a processor's claim; see TransitionRequest). */
  publish?: boolean
  /** The refund a payment.refund_* event is about. */
  refundId?: string
}

export interface IncomingWebhook {
  provider: string
  pspEventId: string
  type: string
  payloadJson: string
  target: PaymentStatus | undefined
  pspReference: string
  amount: number
  currency: string
  failureCode: string
  failureMessage: string
  /** A refund event: our refund id (the PSP carries it as the refund's reference) and its status. */
  refund?: { id: string, target: RefundStatus | undefined }
  /** charge.requires_action: where the customer completes the charge. */
  nextActionUrl?: string
  /** A captured charge (charge.succeeded of a manual payment): the minor units the PSP captured. */
  amountCaptured?: number
}

export type WebhookResult = { duplicate: true } | { duplicate: false, applied: boolean, note: string, payment: Payment }

export interface TransitionRequest {
  to: PaymentStatus
  expectedVersion: number
  actor: string
  failureCode: string
  failureMessage: string
  pspReference: string
  /**
   * false (only for a move to `processing`): the node writes the change, so it guards the payment
   * like any other (a stale version is refused, nothing moves back), but puts no entry in the
   * change log. The processor's claim before it charges: the outcome follows within a PSP round
   * trip and carries the whole payment, so publishing the claim too would cost a Kafka message, a
   * projection and Postgres rows per payment for a state nobody downstream acts on.
   */
  publish?: boolean
  /** With requires_action: where the customer completes the charge (the PSP's page). */
  nextActionUrl?: string
  /**
   * Only with a move to `processing` (issue #16): the PSP the processor routed the payment to,
   * recorded with its claim before the first charge attempt. On a payment already `processing`
   * under another provider it is a failover: version-checked, and refused once a PSP holds a
   * charge of the payment (psp_reference set).
   */
  pspProvider?: string
}

/** A refund's outcome, from the processor (the PSP's answer). Judged on the refund's own status. */
export interface RefundTransitionRequest {
  to: RefundStatus
  actor: string
  pspReference: string
  failureCode: string
  failureMessage: string
}

export type RefundResult = { kind: 'created' | 'replayed', refund: Refund, payment: Payment }
/** `replayed`: the capture was asked for before (pending or done); the payment as it is now. */
export type CaptureResult = { kind: 'requested' | 'replayed', payment: Payment }
export type RefundTransitionResult = { applied: boolean, refund: Refund, payment: Payment }

export type CreateResult = { kind: 'created', payment: Payment } | { kind: 'replayed', payment: Payment }
export type TransitionResult = { applied: boolean, payment: Payment }

export interface PaymentServiceHooks {
  onBatchWritten?: (size: number, durationMs: number) => void
  /** A batch is durable; its change-log values, for the relay's handoff. */
  onChangeEventsCommitted?: (committed: CommittedChangeEvents) => void
  onWriteFailure: (error: unknown) => void
}

interface Waiter {
  afterVersion: number
  finish: (payment: Payment) => void
}

export class PaymentService {
  readonly nodeId: string
  readonly #store: PaymentStore
  readonly #onChangeEventsCommitted: ((committed: CommittedChangeEvents) => void) | undefined
  readonly #limits: NodeLimits
  readonly #committer: GroupCommitter<QueuedChange>
  /** Payment keys with a write between admission and durability, and what kind of write it is. */
  readonly #inflightIds = new Map<string, 'create' | 'update'>()
  /** Internal writers (transitions, webhooks) waiting for an id's in-flight write to be durable. */
  readonly #claimWaiters = new Map<string, Array<() => void>>()
  #claimWaiterCount = 0
  readonly #waiters = new Map<string, Set<Waiter>>()
  #waiterCount = 0
  /** Long-polls per merchant on this node (limits.longPollsPerMerchantMax); an entry is dropped at 0. */
  readonly #waitersByMerchant = new Map<string, number>()
  #accepting = true
  #admissionGate: (() => ProblemError | undefined) | undefined

  constructor (nodeId: string, store: PaymentStore, limits: NodeLimits, hooks: PaymentServiceHooks) {
    this.nodeId = nodeId
    this.#store = store
    this.#onChangeEventsCommitted = hooks.onChangeEventsCommitted
    this.#limits = limits
    this.#committer = new GroupCommitter<QueuedChange>({
      ringCapacity: limits.ringCapacity,
      batchSizeMax: limits.batchSizeMax,
      flushIntervalMs: limits.flushIntervalMs,
      writeBatch: (changes) => this.#writeBatch(changes),
      onWriteFailure: hooks.onWriteFailure,
      ...(hooks.onBatchWritten ? { onBatchWritten: hooks.onBatchWritten } : {}),
    })
  }

  get ringDepth (): number { return this.#committer.depth }
  get ringCapacity (): number { return this.#committer.capacity }
  get longPollWaiters (): number { return this.#waiterCount }
  get accepting (): boolean { return this.#accepting }

  /** A check run before any new payment is admitted (the relay's disk budget plugs in here). */
  setAdmissionGate (gate: () => ProblemError | undefined): void {
    this.#admissionGate = gate
  }

  async create (merchantId: string, checkoutId: string, request: CreatePaymentRequest, nowMs: number): Promise<CreateResult> {
    const requestHash = hashCreateRequest(merchantId, request)
    const key = paymentKey(merchantId, checkoutId)
    if (this.#inflightIds.get(key) === 'update') {
      // The payment exists and is durable; a transition or webhook is being written. A client
      // retrying its create gets the stored payment, not a "busy" answer.
      const existing = this.#store.getPaymentByKey(key)
      // (An update of an id with no payment is about to fail with payment_not_found.)
      if (existing === undefined) throw new ProblemError('idempotency_key_in_use', { retryAfterS: 1 })
      return { kind: 'replayed', payment: checkReplay(existing, requestHash) }
    }
    this.#claim(key, 'create')
    try {
      const existing = this.#store.getPaymentByKey(key)
      if (existing !== undefined) return { kind: 'replayed', payment: checkReplay(existing, requestHash) }
      if (!this.#accepting) throw new ProblemError('shutting_down', { retryAfterS: 1 })
      const gateProblem = this.#admissionGate?.()
      if (gateProblem !== undefined) throw gateProblem
      const payment: Payment = {
        checkoutId,
        merchantId,
        amount: request.amount,
        currency: request.currency,
        paymentMethod: request.paymentMethod,
        description: request.description,
        customerRef: request.customerRef,
        metadata: request.metadata,
        status: 'pending',
        version: 1,
        createdAtMs: nowMs,
        updatedAtMs: nowMs,
        requestHash,
        failureCode: '',
        failureMessage: '',
        pspReference: '',
        nodeId: this.nodeId,
        refunds: [],
      }
      // Only a manual payment carries the field: the usual payment's record is unchanged.
      if (request.captureMethod === 'manual') payment.captureMethod = 'manual'
      await this.#committer.submit({ payment, type: 'payment.created', previousStatus: undefined, actor: 'api' })
      this.#notify(payment)
      return { kind: 'created', payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * The merchant's payment of this checkout id. Another merchant's payment of the same id is
   * another payment: looked up under its own key, it is never even read here, so a merchant
   * learns nothing of the ids others use.
   */
  get (merchantId: string, checkoutId: string): Payment {
    const payment = this.#store.getPayment(merchantId, checkoutId)
    if (payment === undefined) throw new ProblemError('payment_not_found')
    return payment
  }

  /**
   * Resolves with the payment once its version passes `afterVersion` (default: the version now),
   * or with the current payment after `waitMs`, or at once when `onClosed`'s callback is called
   * (the client went away). A plain callback, not an AbortSignal: aborting one builds a
   * DOMException with a stack trace, and every long-poll's response closes.
   */
  waitForChange (merchantId: string, checkoutId: string, afterVersion: number | undefined, waitMs: number,
    onClosed: (cancel: () => void) => void): Promise<Payment> {
    const current = this.get(merchantId, checkoutId)
    const threshold = afterVersion ?? current.version
    if (current.version > threshold || waitMs === 0 || terminalStatuses.has(current.status) && afterVersion === undefined) {
      return Promise.resolve(current)
    }
    if (this.#waiterCount >= this.#limits.longPollWaitersMax) {
      throw new ProblemError('overloaded', { retryAfterS: 1, detail: 'too many long-polls in progress' })
    }
    const merchantWaiters = this.#waitersByMerchant.get(merchantId) ?? 0
    if (merchantWaiters >= this.#limits.longPollsPerMerchantMax) {
      throw new ProblemError('long_poll_limit', { retryAfterS: 1, detail: `at most ${this.#limits.longPollsPerMerchantMax} long-polls per merchant on a node` })
    }
    this.#waitersByMerchant.set(merchantId, merchantWaiters + 1)
    const key = paymentKey(merchantId, checkoutId)
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(key)
      if (waiters === undefined) {
        waiters = new Set()
        this.#waiters.set(key, waiters)
      }
      const set = waiters
      let finished = false
      const waiter: Waiter = {
        afterVersion: threshold,
        finish: (payment) => {
          if (finished) return
          finished = true
          clearTimeout(timer)
          if (set.delete(waiter)) this.#waiterCount--
          const left = (this.#waitersByMerchant.get(merchantId) ?? 1) - 1
          if (left === 0) this.#waitersByMerchant.delete(merchantId)
          else this.#waitersByMerchant.set(merchantId, left)
          if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key)
          resolve(payment)
        },
      }
      const timer = setTimeout(() => waiter.finish(this.#store.getPaymentByKey(key) ?? current), waitMs)
      onClosed(() => waiter.finish(current))
      set.add(waiter)
      this.#waiterCount++
    })
  }

  async transition (merchantId: string, checkoutId: string, request: TransitionRequest, nowMs: number): Promise<TransitionResult> {
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      const failover = request.to === 'processing' && current.status === 'processing' &&
        request.pspProvider !== undefined && request.pspProvider !== (current.pspProvider ?? '')
      if (!failover && current.status === request.to && (request.pspReference === '' || request.pspReference === current.pspReference)) {
        // A retried transition that already happened: say so, change nothing.
        return { applied: false, payment: current }
      }
      const conflict = { current_status: current.status, current_version: current.version }
      if (current.version !== request.expectedVersion) {
        throw new ProblemError('stale_version', {
          detail: `expected version ${request.expectedVersion}, payment is at ${current.version}`,
          extra: conflict,
        })
      }
      if (failover) {
        // Another PSP only while none holds a charge of this payment: the processor proved the
        // first one did not charge it (processor/failover.ts), and a reference would say otherwise.
        if (current.pspReference !== '') {
          throw new ProblemError('invalid_transition', { detail: `the payment holds PSP charge ${current.pspReference} at ${current.pspProvider ?? 'its PSP'}: it cannot move to another PSP`, extra: conflict })
        }
      } else if (!canTransition(current.status, request.to)) {
        throw new ProblemError('invalid_transition', { detail: `${current.status} → ${request.to} is not allowed`, extra: conflict })
      }
      const captureProblem = captureConflict(current, request.to, undefined)
      if (captureProblem !== '') throw new ProblemError('invalid_transition', { detail: captureProblem, extra: conflict })
      const payment = advance(current, request.to, nowMs, request)
      await this.#committer.submit({ payment, type: 'payment.status_changed', previousStatus: current.status, actor: request.actor, publish: request.publish !== false })
      this.#notify(payment)
      return { applied: true, payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * The merchant cancels its payment (POST /payments/{id}/cancel): one not yet charged, `pending`
   * or `requires_action`. The processor claims a payment (`pending → processing`,
   * version-checked) before it charges, and both writes are serialised per id here, so exactly one
   * of them wins. A cancel that lands first makes the claim stale and the processor, re-reading,
   * finds nothing to charge; a claim that lands first makes the cancel `payment_not_cancelable`.
   * At `requires_action` the PSP holds a charge awaiting the customer: the `canceled` change event
   * makes the processor cancel it there (charge-flow.ts cancelAtPsp). Canceling a canceled payment
   * answers it again (`applied: false`), writing nothing. Another merchant's payment is "not found".
   */
  async cancel (merchantId: string, checkoutId: string, nowMs: number): Promise<TransitionResult> {
    // Waits for a write in flight (usually the create itself, when a client cancels at once)
    // rather than refusing: that write has to be durable before a cancel can be judged.
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      if (current.status === 'canceled') return { applied: false, payment: current }
      // A requires_capture payment is cancelable until its capture is asked for (the processor is
      // carrying it out at the PSP then, as a claimed charge: exactly one of the two wins).
      const capturing = current.status === 'requires_capture' && (current.amountToCapture ?? 0) > 0
      if ((current.status !== 'pending' && current.status !== 'requires_action' && current.status !== 'requires_capture') || capturing) {
        throw new ProblemError('payment_not_cancelable', {
          detail: capturing ? 'a capture of this payment is in progress' : `a ${current.status} payment can no longer be canceled`,
          extra: { current_status: current.status, current_version: current.version },
        })
      }
      const payment = advance(current, 'canceled', nowMs, { pspReference: '', failureCode: '', failureMessage: '' })
      await this.#committer.submit({ payment, type: 'payment.status_changed', previousStatus: current.status, actor: 'api' })
      this.#notify(payment)
      return { applied: true, payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * The merchant captures (part of) an authorized payment (POST /payments/{id}/capture, issue #14):
   * a manual payment at `requires_capture` records the amount to capture (default the whole
   * authorization) at its next version, with a `payment.capture_requested` change event from which
   * the processor captures at the PSP and then moves the payment to `succeeded` with
   * `amount_captured`. Serialised with every other write of the id (a cancel, the processor's
   * outcome, a webhook), so a capture and a cancel never both win. A repeat (same amount, or none)
   * while the capture is pending or after it succeeded answers the payment as it is (`replayed`),
   * so a retried request is harmless; anything else is refused with the current status.
   */
  async capture (merchantId: string, checkoutId: string, amount: number | undefined, nowMs: number): Promise<CaptureResult> {
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      const refusal = captureRefusal(current, amount)
      if (refusal === 'replay') return { kind: 'replayed', payment: current }
      if (refusal !== undefined) throw refusal
      if (!this.#accepting) throw new ProblemError('shutting_down', { retryAfterS: 1 })
      const payment = withCaptureRequested(current, amount ?? current.amount, nowMs)
      await this.#committer.submit({ payment, type: 'payment.capture_requested', previousStatus: current.status, actor: 'api' })
      this.#notify(payment)
      return { kind: 'requested', payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * The merchant refunds (part of) a succeeded payment (POST /payments/{id}/refunds). The refund is
   * judged against the durable payment with every other write of the id serialised (waiting for a
   * write in flight, like a cancel), so pending plus succeeded refunds never exceed the amount
   * however many requests race. The Idempotency-Key is scoped to the payment: the same key with
   * the same request answers the stored refund (`replayed`, as it is now), with another request
   * `idempotency_key_reuse`. A new refund is `pending`, at the payment's next version, with a
   * `payment.refund_created` change event the processor refunds at the PSP from.
   */
  async createRefund (merchantId: string, checkoutId: string, idempotencyKey: string, request: RefundRequest,
    nowMs: number): Promise<RefundResult> {
    const requestHash = hashRefundRequest(request)
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      const existing = findRefundByKey(current, idempotencyKey)
      if (existing !== undefined) {
        if (!timingSafeEqual(existing.requestHash, requestHash)) {
          throw new ProblemError('idempotency_key_reuse', {
            detail: 'this Idempotency-Key was already used for a refund of this payment with different parameters',
          })
        }
        return { kind: 'replayed', refund: existing, payment: current }
      }
      const conflict = { current_status: current.status, current_version: current.version }
      if (current.status !== 'succeeded') {
        throw new ProblemError('payment_not_refundable', { detail: `a ${current.status} payment cannot be refunded`, extra: conflict })
      }
      if (current.refunds.length >= this.#limits.refundsPerPaymentMax) {
        throw new ProblemError('payment_not_refundable', { detail: `a payment has at most ${this.#limits.refundsPerPaymentMax} refunds`, extra: conflict })
      }
      if (!this.#accepting) throw new ProblemError('shutting_down', { retryAfterS: 1 })
      const available = refundableAmount(current)
      const amount = request.amount ?? available
      if (amount <= 0 || amount > available) {
        throw new ProblemError('refund_amount_exceeds_available', {
          detail: `${available} minor units of this payment are left to refund`,
          extra: { amount_available: available, currency: current.currency },
        })
      }
      return await this.#addRefund(current, { amount, reason: request.reason, idempotencyKey, requestHash }, 'api', nowMs)
    } finally {
      this.#release(key)
    }
  }

  /**
   * A canceled payment whose PSP charge was taken anyway (the customer completed a requires_action
   * charge in the moment between the cancel on the node and the processor's cancel at the PSP):
   * the whole charge is refunded, so the payment ends canceled with the money back, never charged
   * and canceled. The processor asks once it found the charge succeeded (`chargeReference`, which
   * must be the payment's). One such refund per payment: its key is fixed, so a repeat answers it
   * (`replayed`). It then settles like a merchant's refund (`payment.refund_created` → the
   * processor refunds at the PSP → its outcome).
   */
  async refundCanceledCharge (merchantId: string, checkoutId: string, chargeReference: string, actor: string, nowMs: number): Promise<RefundResult> {
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      const existing = findRefundByKey(current, canceledChargeRefundKey)
      if (existing !== undefined) return { kind: 'replayed', refund: existing, payment: current }
      const conflict = { current_status: current.status, current_version: current.version }
      if (current.status !== 'canceled') {
        throw new ProblemError('payment_not_refundable', { detail: `only a canceled payment's charge is refunded this way, not a ${current.status} one`, extra: conflict })
      }
      if (current.pspReference === '' || current.pspReference !== chargeReference) {
        throw new ProblemError('validation_failed', { errors: [{ field: 'psp_reference', code: 'format', message: 'psp_reference must be the canceled payment\'s PSP charge' }] })
      }
      if (!this.#accepting) throw new ProblemError('shutting_down', { retryAfterS: 1 })
      const amount = refundableAmount(current)
      if (amount <= 0) throw new ProblemError('refund_amount_exceeds_available', { detail: 'nothing is left to refund', extra: { amount_available: 0, currency: current.currency } })
      const reason = 'canceled, but charged by the PSP: the charge is given back'
      return await this.#addRefund(current, { amount, reason, idempotencyKey: canceledChargeRefundKey, requestHash: hashRefundRequest({ amount, reason }) }, actor, nowMs)
    } finally {
      this.#release(key)
    }
  }

  /**
   * A new pending refund, under the caller's claim: written with the payment at its next version
   * and a `payment.refund_created` change event (the processor refunds at the PSP from it).
   */
  async #addRefund (current: Payment, refund: Pick<Refund, 'amount' | 'reason' | 'idempotencyKey' | 'requestHash'>, actor: string,
    nowMs: number): Promise<RefundResult> {
    const created: Refund = {
      id: newRefundId(), status: 'pending', ...refund, createdAtMs: nowMs, updatedAtMs: nowMs, pspReference: '', failureCode: '', failureMessage: '',
    }
    const payment: Payment = { ...current, refunds: [...current.refunds, created], version: current.version + 1, updatedAtMs: nowMs }
    await this.#committer.submit({ payment, type: 'payment.refund_created', previousStatus: current.status, actor, refundId: created.id })
    this.#notify(payment)
    return { kind: 'created', refund: created, payment }
  }

  /** One refund of the merchant's payment; another merchant's payment or an unknown refund is "not found". */
  getRefund (merchantId: string, checkoutId: string, refundId: string): { refund: Refund, payment: Payment } {
    const payment = this.get(merchantId, checkoutId)
    const refund = findRefund(payment, refundId)
    if (refund === undefined) throw new ProblemError('refund_not_found')
    return { refund, payment }
  }

  /**
   * A refund's outcome from the processor. Judged on the refund's own forward-only status, not the
   * payment's version: refunds of one payment settle independently, and a repeat of the move
   * already made is a no-op (`applied: false`).
   */
  async transitionRefund (merchantId: string, checkoutId: string, refundId: string, request: RefundTransitionRequest, nowMs: number): Promise<RefundTransitionResult> {
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      const refund = findRefund(current, refundId)
      if (refund === undefined) throw new ProblemError('refund_not_found')
      if (refund.status === request.to) return { applied: false, refund, payment: current }
      if (!canTransitionRefund(refund.status, request.to)) {
        throw new ProblemError('invalid_transition', {
          detail: `refund ${refund.status} → ${request.to} is not allowed`,
          extra: { current_status: refund.status, current_version: current.version },
        })
      }
      const next = withRefundUpdated(current, refundId, request.to, nowMs, request)
      await this.#committer.submit({ payment: next.payment, type: 'payment.refund_updated', previousStatus: current.status, actor: request.actor, refundId })
      this.#notify(next.payment)
      return { applied: true, refund: next.refund, payment: next.payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * A verified PSP webhook. Deduplicated by PSP event id; applied through the state machine, so a
   * duplicate, late or out-of-order delivery changes nothing. The receipt is written (with the
   * dedup key) in the same batch as any change it causes, and when it disagrees with the payment
   * (another status, amount or reference) even though it changes nothing. A webhook that only
   * confirms the payment's status and PSP reference is acknowledged and not written.
   */
  async receiveWebhook (merchantId: string, checkoutId: string, webhook: IncomingWebhook, nowMs: number): Promise<WebhookResult> {
    const key = paymentKey(merchantId, checkoutId)
    await this.#claimWhenFree(key)
    try {
      if (this.#store.hasWebhook(webhook.provider, webhook.pspEventId)) return { duplicate: true }
      const current = this.#store.getPaymentByKey(key)
      if (current === undefined) throw new ProblemError('payment_not_found')
      // Issue #16: a routed payment hears only from its own PSP. Another's event (a PSP it failed
      // over from, proven not to have charged it) changes nothing and is not recorded.
      if (current.pspProvider !== undefined && current.pspProvider !== webhook.provider) {
        return { duplicate: false, applied: false, note: 'other_provider', payment: current }
      }
      if (webhook.refund !== undefined) return await this.#receiveRefundWebhook(current, webhook, webhook.refund, nowMs)
      const note = webhookNote(current, webhook)
      if (note === 'already_applied' && webhook.pspReference === current.pspReference) {
        // The PSP confirms what the payment already says (usually the processor applied the
        // charge's answer first): nothing to write, so no change event, no Kafka message, no
        // Postgres row. A redelivery is the same no-op, so it needs no dedup key either.
        return { duplicate: false, applied: false, note, payment: current }
      }
      const applied = note === ''
      const receipt = webhookReceipt(webhook, applied, note, nowMs)
      const actor = `webhook:${webhook.provider}`
      if (!applied || webhook.target === undefined) {
        await this.#committer.submit({ payment: current, type: 'payment.webhook_received', previousStatus: current.status, actor, webhook: receipt })
        return { duplicate: false, applied: false, note, payment: current }
      }
      const payment = advance(current, webhook.target, nowMs, webhook)
      await this.#committer.submit({ payment, type: 'payment.status_changed', previousStatus: current.status, actor, webhook: receipt })
      this.#notify(payment)
      return { duplicate: false, applied: true, note: '', payment }
    } finally {
      this.#release(key)
    }
  }

  /**
   * A refund event (`refund.succeeded`, `refund.failed`, …), under the caller's claim: applied to
   * the refund it names through the refund's forward-only states. One that only confirms the
   * refund's status writes nothing; one that disagrees (unknown refund, other amount, a final
   * refund told otherwise) is recorded, like a payment's.
   */
  async #receiveRefundWebhook (current: Payment, webhook: IncomingWebhook, target: { id: string, target: RefundStatus | undefined },
    nowMs: number): Promise<WebhookResult> {
    const refund = findRefund(current, target.id)
    const note = refundWebhookNote(current, refund, webhook, target.target)
    if (note === 'already_applied' && (webhook.pspReference === refund!.pspReference || refund!.pspReference === '')) {
      return { duplicate: false, applied: false, note, payment: current }
    }
    const applied = note === ''
    const receipt = webhookReceipt(webhook, applied, note, nowMs)
    const actor = `webhook:${webhook.provider}`
    const refundId = refund === undefined ? '' : refund.id
    if (!applied || target.target === undefined) {
      await this.#committer.submit({ payment: current, type: 'payment.webhook_received', previousStatus: current.status, actor, webhook: receipt, refundId })
      return { duplicate: false, applied: false, note, payment: current }
    }
    const next = withRefundUpdated(current, refundId, target.target, nowMs, webhook)
    await this.#committer.submit({ payment: next.payment, type: 'payment.refund_updated', previousStatus: current.status, actor, webhook: receipt, refundId })
    this.#notify(next.payment)
    return { duplicate: false, applied: true, note: '', payment: next.payment }
  }

  /** Stops admitting new payments, then waits (bounded by the caller) for queued writes. */
  async drain (): Promise<void> {
    this.#accepting = false
    await this.#committer.drained()
  }

  /** Releases every long-poll with the current state (shutdown). */
  releaseWaiters (): void {
    for (const [key, waiters] of this.#waiters) {
      const payment = this.#store.getPaymentByKey(key)
      for (const waiter of [...waiters]) if (payment) waiter.finish(payment)
    }
  }

  /**
   * The claim for an internal writer (a processor's transition, a PSP webhook): if another write
   * of the id is in flight, wait until it is durable and look again, instead of refusing. The
   * caller would only retry (a PSP redelivers a refused webhook after its backoff, ~0.5 s, and
   * pays a whole request for it); the wait is one group commit. Bounded: past
   * `claimWaitersMax` waiting writers, or after `claimAttemptsMax` looks, it refuses as before.
   */
  async #claimWhenFree (key: string): Promise<void> {
    for (let attempt = 1; this.#inflightIds.has(key); attempt++) {
      if (attempt > this.#limits.claimAttemptsMax || this.#claimWaiterCount >= this.#limits.claimWaitersMax) break
      this.#claimWaiterCount++
      try {
        await new Promise<void>((resolve) => {
          const waiting = this.#claimWaiters.get(key)
          if (waiting === undefined) this.#claimWaiters.set(key, [resolve])
          else waiting.push(resolve)
        })
      } finally {
        this.#claimWaiterCount--
      }
    }
    this.#claim(key, 'update')
  }

  #release (key: string): void {
    this.#inflightIds.delete(key)
    if (this.#claimWaiters.size === 0) return
    const waiting = this.#claimWaiters.get(key)
    if (waiting === undefined) return
    this.#claimWaiters.delete(key)
    for (const wake of waiting) wake()
  }

  #claim (key: string, kind: 'create' | 'update'): void {
    if (this.#inflightIds.has(key)) {
      throw new ProblemError('idempotency_key_in_use', { retryAfterS: 1 })
    }
    if (this.#inflightIds.size >= this.#limits.inflightIdsMax) {
      throw new ProblemError('overloaded', { retryAfterS: 1, detail: 'too many writes in flight' })
    }
    this.#inflightIds.set(key, kind)
  }

  #notify (payment: Payment): void {
    if (this.#waiters.size === 0) return
    const key = paymentKey(payment.merchantId, payment.checkoutId)
    const waiters = this.#waiters.get(key)
    if (waiters === undefined) return
    if (payment.status === 'processing' && this.#limits.processingWakeDelayMs > 0) {
      // The processor's claim before it charges: nothing a client can act on, and usually followed
      // within a PSP round trip by the outcome. Waking long-polls for it made every checkout page
      // ask twice; they hear of it only if it lasts, with whatever the payment is by then.
      setTimeout(() => {
        // Usually the outcome has woken them all by now; shutting down, releaseWaiters does, and
        // the store may already be closed.
        if (!this.#waiters.has(key) || !this.#accepting) return
        const latest = this.#store.getPaymentByKey(key)
        if (latest !== undefined) this.#wake(key, latest)
      }, this.#limits.processingWakeDelayMs).unref()
      return
    }
    this.#wake(key, payment)
  }

  #wake (key: string, payment: Payment): void {
    const waiters = this.#waiters.get(key)
    if (waiters === undefined) return
    for (const waiter of [...waiters]) if (payment.version > waiter.afterVersion) waiter.finish(payment)
  }

  async #writeBatch (changes: QueuedChange[]): Promise<void> {
    let sequence = this.#store.meta.nextSequence
    const seen = new Set<string>()
    const writes: PaymentWrite[] = changes.map((change) => {
      // The in-flight claim keeps one payment out of a batch twice; a duplicate here is a bug.
      const key = paymentKey(change.payment.merchantId, change.payment.checkoutId)
      assert.ok(!seen.has(key), 'duplicate payment inside one batch')
      seen.add(key)
      if (change.publish === false) return { payment: change.payment }
      const event: ChangeEvent = {
        eventId: `${this.nodeId}:${sequence}`,
        nodeId: this.nodeId,
        sequence,
        type: change.type,
        checkoutId: change.payment.checkoutId,
        version: change.payment.version,
        occurredAtMs: change.payment.updatedAtMs,
        payment: change.payment,
        previousStatus: change.previousStatus,
        actor: change.actor,
        webhook: change.webhook,
        refundId: change.refundId ?? '',
      }
      sequence++
      return { payment: change.payment, event }
    })
    const committed = await this.#store.writeBatch(writes)
    this.#onChangeEventsCommitted?.(committed)
  }
}

/** The payment after a status change: next version; PSP details kept unless new ones are given. */
function advance (current: Payment, to: PaymentStatus, nowMs: number,
  details: { pspReference: string, failureCode: string, failureMessage: string, nextActionUrl?: string, pspProvider?: string }): Payment {
  const next: Payment = {
    ...current,
    status: to,
    version: current.version + 1,
    updatedAtMs: nowMs,
    pspReference: details.pspReference || current.pspReference,
    failureCode: details.failureCode || current.failureCode,
    failureMessage: details.failureMessage || current.failureMessage,
  }
  if (details.pspProvider !== undefined && details.pspProvider !== '') next.pspProvider = details.pspProvider
  // What a capture took: the amount the merchant asked to capture, which the processor (or the
  // PSP's webhook) confirmed before this move (captureConflict).
  if (to === 'succeeded' && current.status === 'requires_capture') next.amountCaptured = current.amountToCapture
  // The customer's page is there only while the PSP waits for the customer.
  const nextActionUrl = to === 'requires_action' ? (details.nextActionUrl || current.nextActionUrl) : undefined
  if (nextActionUrl === undefined || nextActionUrl === '') delete next.nextActionUrl
  else next.nextActionUrl = nextActionUrl
  return next
}

/** Why a webhook changes nothing ('' when it applies). */
function webhookNote (current: Payment, webhook: IncomingWebhook): string {
  if (webhook.amount !== current.amount || webhook.currency !== current.currency) return 'amount_mismatch'
  if (webhook.target === undefined) return 'informational'
  if (current.status === webhook.target) return 'already_applied'
  if (terminalStatuses.has(current.status)) return 'terminal'
  // The PSP's own cancel may also beat the processor's record of its answer: an authorization
  // voided at the end of its window before the processor recorded requires_capture. Nothing was
  // taken, so it applies to a claimed payment too (an operator's cancel of one still may not).
  const pspCanceledClaimed = current.status === 'processing' && webhook.target === 'canceled'
  if (!canTransition(current.status, webhook.target) && !pspCanceledClaimed) return 'not_allowed'
  if (captureConflict(current, webhook.target, webhook.amountCaptured) !== '') return 'capture_mismatch'
  return ''
}

/** Why a refund webhook changes nothing ('' when it applies). */
function refundWebhookNote (payment: Payment, refund: Refund | undefined, webhook: IncomingWebhook, target: RefundStatus | undefined): string {
  if (refund === undefined) return 'unknown_refund'
  if (webhook.amount !== refund.amount || webhook.currency !== payment.currency) return 'amount_mismatch'
  if (target === undefined || target === refund.status) return 'already_applied'
  if (!canTransitionRefund(refund.status, target)) return 'terminal'
  return ''
}

/** Stripe's idempotency rules for a checkout id the merchant already used for a payment. */
function checkReplay (existing: Payment, requestHash: Uint8Array): Payment {
  if (!timingSafeEqual(existing.requestHash, requestHash)) {
    throw new ProblemError('idempotency_key_reuse', {
      detail: 'this checkout id was already used for a payment with different parameters',
    })
  }
  return existing
}

/** What a change event records of a webhook the node received. */
function webhookReceipt (webhook: IncomingWebhook, applied: boolean, note: string, nowMs: number): WebhookReceipt {
  return {
    provider: webhook.provider,
    pspEventId: webhook.pspEventId,
    type: webhook.type,
    payloadJson: webhook.payloadJson,
    applied,
    note,
    receivedAtMs: nowMs,
  }
}
