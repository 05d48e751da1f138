// Drives one payment from `pending` to a terminal state: claim it on its node (a move to
// `processing`, written durably but not published: the outcome's event follows), charge
// the PSP (idempotency key = checkout id, the same on every attempt forever), apply the outcome on
// the node. Safe to run any number of times for one payment (redelivery, crash, watchdog): the
// node's version check and forward-only state machine, and the PSP's idempotency, make every
// repetition a no-op or the same charge.

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { Logger } from '../lib/log.ts'
import { terminalStatuses, type PaymentStatus } from '../lib/payment-codec.ts'
import type { AttemptLog } from './attempt-log.ts'
import { processorLimits } from './limits.ts'
import { NodeError, type NodeClient, type NodePayment, type TransitionCall } from './node-client.ts'
import type { PspClient } from './psp/psp-client.ts'
import { sandboxProvider, toSandboxChargeBody } from './psp/sandbox.ts'
import { chargeIdempotencyKey, PspError, type ChargeOutcome, type ChargeRequest } from './psp/types.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import type { Semaphore } from './semaphore.ts'

export interface ChargeFlowDeps {
  node: NodeClient
  psp: PspClient
  attempts: AttemptLog
  pspSlots: Semaphore
  log: Logger
  /** Marks the payment (its merchant's checkout id) for a person in Postgres. */
  flag: (payment: PaymentId, reason: string) => Promise<void>
  onPspCall?: (outcome: string, latencyMs: number) => void
}

/** A payment that cannot be driven further now: its event goes to the dead-letter topic. */
export class DeadLetter extends Error {
  readonly reason: string
  constructor (reason: string, message: string, options: { cause?: unknown } = {}) {
    super(`${reason}: ${message}`, { cause: options.cause })
    this.name = 'DeadLetter'
    this.reason = reason
  }
}

const actor = 'processor'

/** What stands in for the payment method token in text we keep. */
export const tokenPlaceholder = '[payment_method]'
/** Shorter tokens are not searched for in text: they would match ordinary words. */
const redactedTokenLengthMin = 4

/**
 * PSP text with the payment's token taken out. PSPs quote it in errors ("No such payment method:
 * 'pm_…'"), and a failure message is kept in clear (node, events, Postgres, dead letters), while
 * the token itself is only ever stored sealed (issue #17 part 7).
 */
export function withoutToken (text: string, token: string): string {
  if (token.length < redactedTokenLengthMin || !text.includes(token)) return text
  return text.split(token).join(tokenPlaceholder)
}

export function chargeRequestOf (payment: NodePayment): ChargeRequest {
  return {
    checkoutId: payment.checkout_id,
    merchantId: payment.merchant_id,
    amount: payment.amount,
    currency: payment.currency,
    paymentMethod: payment.payment_method,
    description: payment.description,
    ...(payment.capture_method === 'manual' ? { manualCapture: true as const } : {}),
  }
}

/** Retries a node call while the node is down or busy; bounded, then a dead letter. */
export async function withNodeRetries<T> (what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call()
    } catch (error) {
      if (!(error instanceof NodeError) || !error.retriable) throw error
      if (attempt + 1 >= processorLimits.nodeAttemptsMax) throw new DeadLetter('node_unavailable', what, { cause: error })
      await sleep(backoffDelayMs({
        baseDelayMs: processorLimits.nodeBackoffBaseDelayMs, delayMsMax: processorLimits.nodeBackoffDelayMsMax,
      }, attempt))
    }
  }
}

/**
 * Applies `to` on the node against the version we believe, re-reading the payment when someone
 * else (a webhook) moved it first. Returns the payment as it ends up.
 */
export async function applyTransition (deps: ChargeFlowDeps, payment: NodePayment, call: Omit<TransitionCall, 'expectedVersion'>): Promise<NodePayment> {
  let current = payment
  for (let round = 0; round < processorLimits.nodeAttemptsMax; round++) {
    if (terminalStatuses.has(current.status)) return current
    // A requires_action outcome is recorded once: a payment already holding its PSP reference took
    // it (from the PSP's webhook, which can beat this call) and whatever came after it is newer.
    // Applying it again would move the payment back, e.g. from the processing that followed it.
    if (call.to === 'requires_action' && call.pspReference !== undefined && call.pspReference !== '' &&
      current.psp_reference === call.pspReference) return current
    try {
      const result = await withNodeRetries(`transition to ${call.to}`, () =>
        deps.node.transition(current, { ...call, expectedVersion: current.version, ...nodeOf(current) }))
      return result.payment
    } catch (error) {
      if (!(error instanceof NodeError) || (error.code !== 'stale_version' && error.code !== 'invalid_transition')) throw error
      current = await withNodeRetries('read payment', () => deps.node.get(current))
    }
  }
  throw new DeadLetter('transition_contended', `could not apply ${call.to} to ${payment.checkout_id}`)
}

interface PspCallResult<O extends { kind: string }> {
  outcome: O
  httpStatus: number
  responseBody: unknown
  latencyMs: number
}

/**
 * One PSP operation of a payment until it gets an answer: every attempt is a `psp_attempts` row
 * (idempotency key = the charge's, from merchant and checkout id, or the refund's; outcome `<outcomePrefix><kind>`, or `error`); a retriable error
 * waits its capped, jittered backoff (at least the PSP's Retry-After, capped too), a
 * non-retriable one or `pspAttemptsMax` attempts become a dead letter. An error for which
 * `settles` holds is thrown as it is, after its row, for the caller to turn into an outcome.
 */
export async function callPspWithRetries<O extends { kind: string }> (deps: ChargeFlowDeps, o: {
  merchantId: string
  checkoutId: string
  /** The PSP idempotency key, when it is not the charge's (chargeIdempotencyKey): a refund's, a capture's. */
  idempotencyKey?: string
  request: unknown
  outcomePrefix: string
  /** Fields of the line logged for each failed attempt, and its message. */
  logFields: Record<string, string>
  failedMessage: string
  call: () => Promise<PspCallResult<O>>
  settles?: (error: PspError) => boolean
  /** The payment method token, taken out of the messages of dead letters. */
  token?: string
}): Promise<PspCallResult<O>> {
  for (let attempt = 1; ; attempt++) {
    const startedAt = new Date()
    const started = performance.now()
    const row = {
      merchantId: o.merchantId, checkoutId: o.checkoutId, provider: sandboxProvider,
      idempotencyKey: o.idempotencyKey ?? chargeIdempotencyKey(o.merchantId, o.checkoutId), attempt, request: o.request, startedAt,
    }
    try {
      const call = await deps.pspSlots.run(o.call)
      const outcome = `${o.outcomePrefix}${call.outcome.kind}`
      deps.onPspCall?.(outcome, call.latencyMs)
      await deps.attempts.record({ ...row, httpStatus: call.httpStatus, response: call.responseBody, outcome, errorCode: undefined, latencyMs: call.latencyMs })
      return call
    } catch (error) {
      if (!(error instanceof PspError)) throw error
      const latencyMs = Math.round(performance.now() - started)
      deps.onPspCall?.(error.code, latencyMs)
      await deps.attempts.record({ ...row, httpStatus: error.httpStatus, response: undefined, outcome: 'error', errorCode: error.code, latencyMs })
      deps.log.warn({ ...o.logFields, attempt, code: error.code, retriable: error.retriable }, o.failedMessage)
      if (o.settles?.(error) === true) throw error
      const message = withoutToken(error.message, o.token ?? '')
      if (!error.retriable) throw new DeadLetter(error.code, message)
      if (attempt >= processorLimits.pspAttemptsMax) throw new DeadLetter('psp_retries_exhausted', message)
      const backoffMs = backoffDelayMs({
        baseDelayMs: processorLimits.pspBackoffBaseDelayMs, delayMsMax: processorLimits.pspBackoffDelayMsMax,
      }, attempt - 1)
      await sleep(Math.max(backoffMs, Math.min(error.retryAfterMs ?? 0, processorLimits.pspBackoffDelayMsMax)))
    }
  }
}

async function chargeWithRetries (deps: ChargeFlowDeps, request: ChargeRequest): Promise<ChargeOutcome> {
  try {
    const call = await callPspWithRetries(deps, {
      merchantId: request.merchantId, checkoutId: request.checkoutId, request: toSandboxChargeBody(request), outcomePrefix: '',
      logFields: { checkout_id: request.checkoutId }, failedMessage: 'psp attempt failed',
      call: () => deps.psp.charge(request),
      settles: (error) => error.code === 'psp_rejected',
      token: request.paymentMethod,
    })
    return call.outcome
  } catch (error) {
    if (!(error instanceof PspError) || error.code !== 'psp_rejected') throw error
    // The PSP refused the request itself (nothing was charged): the payment fails for good.
    return { kind: 'failed', pspReference: '', failureCode: 'psp_rejected', failureMessage: withoutToken(error.message, request.paymentMethod) }
  }
}

/** Applies what the PSP said. Returns the payment as it ends up on the node. */
export async function applyOutcome (deps: ChargeFlowDeps, payment: NodePayment, outcome: ChargeOutcome, by: string): Promise<NodePayment> {
  const log = deps.log.child({ checkout_id: payment.checkout_id })
  switch (outcome.kind) {
    case 'succeeded':
      if (outcome.amountCaptured !== undefined && outcome.amountCaptured !== payment.amount_to_capture) {
        // A capture we did not ask for (or of another amount): never a success by accident.
        const reason = `psp captured ${outcome.amountCaptured}, the capture asked for ${payment.amount_to_capture ?? 0}`
        log.error({ psp_reference: outcome.pspReference, reason }, 'psp capture flagged for review')
        await deps.flag(payment, reason)
        return payment
      }
      return applyTransition(deps, payment, { to: 'succeeded', actor: by, pspReference: outcome.pspReference })
    case 'failed':
      return applyTransition(deps, payment, {
        to: 'failed', actor: by, failureCode: outcome.failureCode, failureMessage: withoutToken(outcome.failureMessage, payment.payment_method),
        ...(outcome.pspReference ? { pspReference: outcome.pspReference } : {}),
      })
    case 'requires_action':
      return applyTransition(deps, payment, {
        to: 'requires_action', actor: by, pspReference: outcome.pspReference,
        ...(outcome.nextActionUrl !== undefined ? { nextActionUrl: outcome.nextActionUrl } : {}),
      })
    case 'requires_capture':
      // Manual capture: authorized; the payment waits for the merchant's capture (capture-flow.ts).
      return applyTransition(deps, payment, { to: 'requires_capture', actor: by, pspReference: outcome.pspReference })
    case 'canceled':
      // Voided at the PSP (an authorization that expired uncaptured, a cancel): nothing was taken.
      return applyTransition(deps, payment, {
        to: 'canceled', actor: by, pspReference: outcome.pspReference, failureCode: outcome.failureCode,
        failureMessage: withoutToken(outcome.failureMessage, payment.payment_method),
      })
    case 'pending':
      // The PSP finishes it asynchronously: its webhook (or the watchdog) brings the result.
      log.info({ psp_reference: outcome.pspReference }, 'charge pending at the psp')
      return payment
    case 'flagged':
      log.error({ psp_reference: outcome.pspReference, reason: outcome.reason }, 'psp answer flagged for review')
      await deps.flag(payment, outcome.reason)
      return payment
  }
}

/** The whole flow for a payment the node has accepted. `version` is the version the event saw. */
export async function drivePayment (deps: ChargeFlowDeps, payment: NodePayment, by = actor): Promise<NodePayment> {
  let current = payment
  if (current.status === 'pending') {
    try {
      current = (await withNodeRetries('move to processing', () =>
        deps.node.transition(current, { to: 'processing', expectedVersion: current.version, actor: by, publish: false, ...nodeOf(current) }))).payment
    } catch (error) {
      if (!(error instanceof NodeError) || (error.code !== 'stale_version' && error.code !== 'invalid_transition')) throw error
      current = await withNodeRetries('read payment', () => deps.node.get(current))
    }
  }
  if (!isChargeable(current.status)) return current
  const outcome = await chargeWithRetries(deps, chargeRequestOf(current))
  return applyOutcome(deps, current, outcome, by)
}

/**
 * A payment canceled while its charge waited at the PSP for the customer (`requires_action` →
 * `canceled` on the node): cancel that charge at the PSP too, so the customer can no longer
 * complete it. Idempotent at the PSP, so redeliveries and retries are harmless; retried like a
 * charge, then a dead letter. If the charge left `requires_action` first (the customer completed
 * it in between), a succeeded charge is given back: the node refunds it whole
 * (`refundCanceledCharge`), so the payment ends canceled with the money back; a failed charge took
 * nothing. Anything else the PSP says is flagged for a person.
 */
export async function cancelAtPsp (deps: ChargeFlowDeps, payment: NodePayment): Promise<void> {
  const pspReference = payment.psp_reference ?? ''
  const log = deps.log.child({ checkout_id: payment.checkout_id, psp_reference: pspReference })
  const call = await callPspWithRetries(deps, {
    merchantId: payment.merchant_id, checkoutId: payment.checkout_id, request: { cancel: pspReference }, outcomePrefix: 'cancel_',
    logFields: { checkout_id: payment.checkout_id, psp_reference: pspReference }, failedMessage: 'psp cancel attempt failed',
    call: () => deps.psp.cancelCharge(pspReference),
  })
  if (call.outcome.kind === 'canceled') {
    log.info('charge canceled at the psp')
    return
  }
  const found = await deps.psp.findCharge(chargeRequestOf(payment))
  if (found?.kind === 'failed') {
    log.info('charge not cancelable at the psp: it failed, nothing was taken')
    return
  }
  if (found?.kind === 'succeeded' && found.pspReference === pspReference) {
    const refund = await withNodeRetries('refund the canceled payment\'s charge', () =>
      deps.node.refundCanceledCharge(payment, pspReference, 'cancel'))
    log.warn({ refund_id: refund.refund.id, created: refund.created }, 'canceled payment charged at the psp: the charge is refunded')
    return
  }
  const reason = `canceled, but the psp charge ${pspReference} is ${found?.kind ?? 'missing'}: void or refund it`
  log.error({ psp: found?.kind, detail: call.outcome.detail }, 'canceled payment charged at the psp: flagged')
  await deps.flag(payment, reason)
}

/** The payment's node, so its transitions are batched with others for that node. */
function nodeOf (payment: NodePayment): { nodeId?: string } {
  return payment.node_id !== undefined && payment.node_id !== '' ? { nodeId: payment.node_id } : {}
}

function isChargeable (status: PaymentStatus): boolean {
  return status === 'processing' || status === 'pending'
}
