// Drives one payment from `pending` to a terminal state: claim it on its node (a move to
// `processing`, written durably but not published: the outcome's event follows), charge
// the PSP (idempotency key = checkout id, the same on every attempt forever), apply the outcome on
// the node. Safe to run any number of times for one payment (redelivery, crash, watchdog): the
// node's version check and forward-only state machine, and the PSP's idempotency, make every
// repetition a no-op or the same charge.

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { Logger } from '../lib/log.ts'
import { tracer } from '../lib/tracing.ts'
import { terminalStatuses, type PaymentStatus } from '../lib/payment-codec.ts'
import type { AttemptLog } from './attempt-log.ts'
import { processorLimits } from './limits.ts'
import { NodeError, type NodeClient, type NodePayment, type TransitionCall } from './node-client.ts'
import type { PspProvider } from './psp/provider.ts'
import { CircuitOpenError, type PspRegistry } from './psp/registry.ts'
import type { RoutablePayment } from './psp/routing.ts'
import { chargeIdempotencyKey, PspError, type ChargeOutcome, type ChargeRequest } from './psp/types.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import type { Semaphore } from './semaphore.ts'
import { tracePspAttempt } from './traces.ts'

export interface ChargeFlowDeps {
  node: NodeClient
  /** The PSP of everything when `psps` is absent (tests, a processor from before routing). */
  psp: PspProvider
  /** Issue #16: the PSPs by name, each behind its breaker, and the router. */
  psps?: PspRegistry
  /** A payment routed at its claim (reason: the router's) or moved by a failover (reason `failover`). */
  onRoute?: (provider: string, reason: string) => void
  /** processorLimits.failoverQuietMs unless given (tests). */
  failoverQuietMs?: number
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

/** The PSP a payment is recorded at (issue #16): its psp_provider, or the fallback for one from before routing. */
export function pspOf (deps: ChargeFlowDeps, provider: string | undefined): PspProvider {
  return deps.psps !== undefined ? deps.psps.get(provider) : deps.psp
}

function routableOf (payment: NodePayment): RoutablePayment {
  return {
    checkoutId: payment.checkout_id, merchantId: payment.merchant_id, amount: payment.amount, currency: payment.currency,
    paymentMethod: payment.payment_method, manualCapture: payment.capture_method === 'manual',
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
  /** The provider called, as psp_attempts names it (default: deps.psp's). */
  provider?: string
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
  /**
   * Issue #16. `evidence`: what the attempts tell of whether the PSP may have processed the
   * request. `circuitOpenThrows`: an open breaker's refusal is thrown at once (the charge flow
   * decides between failover and waiting); otherwise it is waited out here, bounded.
   * `beforeRetry`: runs before every attempt after the first (may throw to stop).
   */
  evidence?: AttemptEvidence
  circuitOpenThrows?: boolean
  beforeRetry?: () => Promise<void>
}): Promise<PspCallResult<O>> {
  let circuitWaitedMs = 0
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1 && o.beforeRetry !== undefined) await o.beforeRetry()
    const startedAt = new Date()
    const started = performance.now()
    const row = {
      merchantId: o.merchantId, checkoutId: o.checkoutId, provider: o.provider ?? deps.psp.name,
      idempotencyKey: o.idempotencyKey ?? chargeIdempotencyKey(o.merchantId, o.checkoutId), attempt, request: o.request, startedAt,
    }
    try {
      const call = await deps.pspSlots.run(o.call)
      const outcome = `${o.outcomePrefix}${call.outcome.kind}`
      deps.onPspCall?.(outcome, call.latencyMs)
      if (tracer !== undefined) tracePspAttempt(tracer, { ...pspSpanOf(o, row.provider, attempt, started), httpStatus: call.httpStatus, outcome })
      await deps.attempts.record({ ...row, httpStatus: call.httpStatus, response: call.responseBody, outcome, errorCode: undefined, latencyMs: call.latencyMs })
      return call
    } catch (error) {
      if (!(error instanceof PspError)) throw error
      if (error instanceof CircuitOpenError) {
        // Nothing was sent: no attempt used, no row, and evidence that this one never reached the
        // PSP. Wait for the breaker's probe, bounded (or let the charge flow decide).
        if (o.evidence !== undefined) o.evidence.refusedAttempts++
        if (o.circuitOpenThrows === true) throw error
        const waitMs = circuitWaitMs(error)
        circuitWaitedMs += waitMs
        if (circuitWaitedMs > processorLimits.pspBreakerWaitMsMax) throw new DeadLetter('psp_circuit_open', error.message, { cause: error })
        attempt--
        await sleep(waitMs)
        continue
      }
      if (o.evidence !== undefined) {
        if (error.notReceived) o.evidence.refusedAttempts++
        else o.evidence.uncertainAtMs = Date.now()
      }
      const latencyMs = Math.round(performance.now() - started)
      deps.onPspCall?.(error.code, latencyMs)
      if (tracer !== undefined) tracePspAttempt(tracer, { ...pspSpanOf(o, row.provider, attempt, started), httpStatus: error.httpStatus, outcome: 'error', errorCode: error.code })
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

/** A PSP attempt's span fields (issue #18): the operation from the outcome prefix ('' is a charge). */
function pspSpanOf (o: { merchantId: string, checkoutId: string, outcomePrefix: string }, provider: string, attempt: number, startedAt: number):
  { merchantId: string, checkoutId: string, provider: string, operation: string, attempt: number, startedAt: number } {
  return { merchantId: o.merchantId, checkoutId: o.checkoutId, provider, operation: o.outcomePrefix === '' ? 'charge' : o.outcomePrefix.slice(0, -1), attempt, startedAt }
}

/**
 * Issue #16: what a drive's attempts at one PSP say about whether it may hold a charge.
 * `uncertainAtMs`: when the last attempt that may have reached it failed (a timeout, a reset, a
 * 5xx, an in-progress); undefined when none did. `refusedAttempts`: attempts it provably never
 * processed (a refused connect, a 429, our open breaker).
 */
export interface AttemptEvidence {
  uncertainAtMs?: number
  refusedAttempts: number
}

function circuitWaitMs (error: CircuitOpenError): number {
  return Math.min(Math.max(error.retryAtMs - Date.now(), processorLimits.pspBreakerWaitDelayMsMin), processorLimits.pspBreakerWaitDelayMsMax)
}

async function chargeWithRetries (deps: ChargeFlowDeps, psp: PspProvider, request: ChargeRequest,
  routed?: { evidence: AttemptEvidence, beforeRetry: () => Promise<void> }): Promise<ChargeOutcome> {
  try {
    const call = await callPspWithRetries(deps, {
      provider: psp.name, merchantId: request.merchantId, checkoutId: request.checkoutId, request: psp.chargeBody(request), outcomePrefix: '',
      logFields: { checkout_id: request.checkoutId }, failedMessage: 'psp attempt failed',
      call: () => psp.charge(request),
      settles: (error) => error.code === 'psp_rejected',
      token: request.paymentMethod,
      ...(routed !== undefined ? { evidence: routed.evidence, beforeRetry: routed.beforeRetry, circuitOpenThrows: true } : {}),
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

/**
 * The whole flow for a payment the node has accepted. `version` is the version the event saw.
 * Issue #16: the claim carries the PSP the router chose, so the node records it durably before
 * the first charge attempt, and everything after (retries, the watchdog, replays, refunds) goes
 * there; with more than one provider routed, a charge that cannot get through may move on
 * (chargeWithFailover).
 */
export async function drivePayment (deps: ChargeFlowDeps, payment: NodePayment, by = actor): Promise<NodePayment> {
  let current = payment
  let claimed = false
  if (current.status === 'pending') {
    const route = deps.psps?.choose(routableOf(current))
    try {
      const result = await withNodeRetries('move to processing', () =>
        deps.node.transition(current, {
          to: 'processing', expectedVersion: current.version, actor: by, publish: false, ...nodeOf(current),
          ...(route !== undefined ? { pspProvider: route.provider } : {}),
        }))
      current = result.payment
      claimed = result.applied
      if (route !== undefined && result.applied) deps.onRoute?.(route.provider, route.reason)
    } catch (error) {
      if (!(error instanceof NodeError) || (error.code !== 'stale_version' && error.code !== 'invalid_transition')) throw error
      current = await withNodeRetries('read payment', () => deps.node.get(current))
    }
  }
  if (!isChargeable(current.status)) return current
  if (!claimed) {
    // A re-drive (redelivery, dead-letter replay, the watchdog): the charge may be older than the
    // PSP's key retention (~24 h), when the same key would make a second charge. Look it up by
    // reference first; found, it is applied and never charged again (issue #16).
    const found = await lookUpCharge(pspOf(deps, current.psp_provider), chargeRequestOf(current))
    if (found !== undefined) return applyOutcome(deps, current, found, by)
  }
  // Only a payment another provider fits pays for failover's bookkeeping (a re-read per retry).
  if (deps.psps?.canFailOver(routableOf(current), deps.psps.get(current.psp_provider).name) === true) {
    return chargeWithFailover(deps, current, claimed, by)
  }
  const outcome = await chargeWithRetries(deps, pspOf(deps, current.psp_provider), chargeRequestOf(current))
  return applyOutcome(deps, current, outcome, by)
}

/** The payment's charge at `psp`, found by reference; a PSP that cannot answer is a dead letter (re-driven later), never a guess. */
async function lookUpCharge (psp: PspProvider, request: ChargeRequest): Promise<ChargeOutcome | undefined> {
  try {
    return await psp.findCharge(request)
  } catch (error) {
    if (!(error instanceof PspError)) throw error
    throw new DeadLetter('psp_lookup_failed', `${psp.name}: ${withoutToken(error.message, request.paymentMethod)}`, { cause: error })
  }
}

/** The payment moved on (another PSP recorded, or a status) while we retried: stop, follow it. */
class Superseded extends Error {
  readonly payment: NodePayment
  constructor (payment: NodePayment) {
    super(`payment ${payment.checkout_id} moved on (${payment.status} at ${payment.psp_provider ?? 'the fallback psp'})`)
    this.payment = payment
  }
}

/**
 * Issue #16: charges the payment at its recorded PSP; when that PSP cannot be got through (its
 * breaker open, or retries exhausted) and the routing list has another one whose breaker is
 * closed, the payment moves there, but only once the first one provably did not charge it
 * (provenUncharged), and by a version-checked move on the node recorded before the first attempt
 * at the new one. A timeout alone never moves a payment. While nothing can be proven, it waits for
 * the first PSP's breaker (bounded by pspBreakerWaitMsMax, then a dead letter; the watchdog
 * re-drives it later at the same PSP).
 */
async function chargeWithFailover (deps: ChargeFlowDeps, payment: NodePayment, claimed: boolean, by: string): Promise<NodePayment> {
  let current = payment
  // Attempts of another driver (a processor that crashed, a watchdog round) are unknown to us:
  // unless this drive made the claim, the drive's start counts as an uncertain attempt.
  let evidence: AttemptEvidence = claimed ? { refusedAttempts: 0 } : { refusedAttempts: 0, uncertainAtMs: Date.now() }
  let moves = 0
  let circuitWaitedMs = 0
  const log = deps.log.child({ checkout_id: payment.checkout_id })
  for (;;) {
    const psp = deps.psps!.get(current.psp_provider)
    const request = chargeRequestOf(current)
    const recorded = current.psp_provider ?? ''
    let outcome: ChargeOutcome
    try {
      outcome = await chargeWithRetries(deps, psp, request, {
        evidence,
        beforeRetry: async () => {
          const now = await withNodeRetries('read payment', () => deps.node.get(current))
          if (!isChargeable(now.status) || (now.psp_provider ?? '') !== recorded) throw new Superseded(now)
        },
      })
    } catch (error) {
      if (error instanceof Superseded) {
        current = error.payment
        if (!isChargeable(current.status)) return current
        // Another driver moved it; its attempts at the new PSP are unknown to us.
        evidence = { refusedAttempts: 0, uncertainAtMs: Date.now() }
        if (++moves > processorLimits.failoversPerPaymentMax) throw new DeadLetter('psp_failover_contended', error.message)
        continue
      }
      const circuitOpen = error instanceof CircuitOpenError
      const exhausted = error instanceof DeadLetter && error.reason === 'psp_retries_exhausted'
      if (!circuitOpen && !exhausted) throw error
      const target = moves < processorLimits.failoversPerPaymentMax ? deps.psps!.failoverTarget(routableOf(current), psp.name) : undefined
      const quietMs = deps.failoverQuietMs ?? processorLimits.failoverQuietMs
      if (target !== undefined && evidence.uncertainAtMs !== undefined) {
        // Only the quiet time stands between us and the lookup: wait it out here rather than
        // probing the PSP again (each failed probe would restart it: a PSP failing every charge
        // with a 5xx would then keep its payments forever). Within the breaker wait's budget.
        // Until the clock provenUncharged reads says it is over: a timer may fire a little before
        // Date.now() gets there, and a check that came early gave up the failover.
        const quietEndsAtMs = evidence.uncertainAtMs + quietMs
        const quietLeftMs = Math.max(0, quietEndsAtMs - Date.now())
        if (circuitWaitedMs + quietLeftMs <= processorLimits.pspBreakerWaitMsMax) {
          circuitWaitedMs += quietLeftMs
          await sleepUntilEpochMs(quietEndsAtMs)
        }
      }
      const proven = target !== undefined && await provenUncharged(psp, request, evidence, claimed, quietMs)
      if (target !== undefined && proven) {
        const moved = await moveToProvider(deps, current, target, by)
        moves++
        if (moved.psp_provider === target && isChargeable(moved.status)) {
          log.warn({ from: psp.name, to: target, refused_attempts: evidence.refusedAttempts }, 'payment moved to another psp: the first provably did not charge it')
          deps.onRoute?.(target, 'failover')
          // Nobody charged it at the new PSP before this move (the claim was at the old one).
          evidence = { refusedAttempts: 0 }
          claimed = true
        } else {
          evidence = { refusedAttempts: 0, uncertainAtMs: Date.now() }
        }
        current = moved
        if (!isChargeable(current.status)) return current
        continue
      }
      if (!circuitOpen) throw error
      // Nothing proven, or nowhere to go: wait for this PSP's breaker to let a probe through.
      const waitMs = circuitWaitMs(error)
      circuitWaitedMs += waitMs
      if (circuitWaitedMs > processorLimits.pspBreakerWaitMsMax) throw new DeadLetter('psp_circuit_open', error.message, { cause: error })
      await sleep(waitMs)
      continue
    }
    return applyOutcome(deps, current, outcome, by)
  }
}

/** Sleeps until Date.now() reaches `atMs` (a timer alone may wake a millisecond or two before it). */
async function sleepUntilEpochMs (atMs: number): Promise<void> {
  for (let leftMs = atMs - Date.now(); leftMs > 0; leftMs = atMs - Date.now()) await sleep(leftMs)
}

/**
 * Whether `psp` provably holds no charge of the payment (issue #16). Either every attempt since
 * this drive's own claim was refused before processing (nobody else could have tried in between),
 * or a lookup by its idempotency key / reference finds none, made at least failoverQuietMs after
 * the last attempt that may have reached it (so one still in process there has landed). The
 * lookup bypasses the breaker (a light read is the proof we need); failing, it proves nothing.
 */
export async function provenUncharged (psp: PspProvider, request: ChargeRequest, evidence: AttemptEvidence, claimed: boolean,
  quietMs: number = processorLimits.failoverQuietMs): Promise<boolean> {
  if (claimed && evidence.uncertainAtMs === undefined && evidence.refusedAttempts > 0) return true
  if (evidence.uncertainAtMs !== undefined && Date.now() - evidence.uncertainAtMs < quietMs) return false
  const direct = 'inner' in psp ? (psp as unknown as { inner: PspProvider }).inner : psp
  try {
    return (await direct.findCharge(request)) === undefined
  } catch {
    return false
  }
}

/** The version-checked move to another PSP; on a conflict, the payment as it is now. */
async function moveToProvider (deps: ChargeFlowDeps, payment: NodePayment, target: string, by: string): Promise<NodePayment> {
  try {
    return (await withNodeRetries('move to another psp', () => deps.node.transition(payment, {
      to: 'processing', expectedVersion: payment.version, actor: by, publish: false, pspProvider: target, ...nodeOf(payment),
    }))).payment
  } catch (error) {
    if (!(error instanceof NodeError) || (error.code !== 'stale_version' && error.code !== 'invalid_transition')) throw error
    return withNodeRetries('read payment', () => deps.node.get(payment))
  }
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
  const psp = pspOf(deps, payment.psp_provider)
  const call = await callPspWithRetries(deps, {
    provider: psp.name, merchantId: payment.merchant_id, checkoutId: payment.checkout_id, request: { cancel: pspReference }, outcomePrefix: 'cancel_',
    logFields: { checkout_id: payment.checkout_id, psp_reference: pspReference }, failedMessage: 'psp cancel attempt failed',
    call: () => psp.cancelCharge(pspReference),
  })
  if (call.outcome.kind === 'canceled') {
    log.info('charge canceled at the psp')
    return
  }
  const found = await psp.findCharge(chargeRequestOf(payment))
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
