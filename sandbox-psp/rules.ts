// Deterministic outcomes by payment method token, like a real PSP's test cards. Tests pick the
// outcome through the token; random faults (faults.ts) come on top only when configured.

export type FinalFailure = { code: string, message: string }

export type Outcome =
  /** Settled at once. */
  | { kind: 'succeeded' }
  /** Declined at once. */
  | { kind: 'failed', failure: FinalFailure }
  /** Answered `pending`; the final status arrives by webhook after the configured async delay. */
  | { kind: 'async', final: { kind: 'succeeded' } | { kind: 'failed', failure: FinalFailure } }
  /** Needs the customer (3-D Secure and the like); stays there, the sandbox has no challenge flow. */
  | { kind: 'requires_action' }

export type RuleFault =
  /** The first attempt for an idempotency key answers 500 without charging; retries proceed. */
  | 'error_5xx_once'
  /** The first attempt charges durably, then holds the response past any client timeout. */
  | 'timeout_after_charge'

/** What refunds of a charge made with the token come to (POST /v1/refunds). */
export type RefundOutcome = 'succeeded' | 'failed' | 'async_succeeded' | 'async_failed'

export type RefundFault =
  /** The first refund attempt for an idempotency key answers 500 without refunding; retries proceed. */
  | 'error_5xx_once'
  /** The first refund attempt refunds durably, then holds the response past any client timeout. */
  | 'timeout_after_refund'

export interface RefundRule {
  outcome: RefundOutcome
  fault?: RefundFault
}

/** Captures of its authorizations (manual capture, POST /v1/charges/{id}/capture). */
export type CaptureFault =
  /** The first capture attempt for an idempotency key answers 500 without capturing; retries proceed. */
  | 'error_5xx_once'
  /** The first capture attempt captures durably, then holds the response past any client timeout. */
  | 'timeout_after_capture'

export interface PaymentMethodRule {
  outcome: Outcome
  fault?: RuleFault
  /** Refunds of its charges; default: they succeed at once. */
  refund?: RefundRule
  /** Manual capture: a fault of its captures, and its own authorization window (else the configured one). */
  capture?: { fault?: CaptureFault, authorizationWindowMs?: number }
}

/** The authorization window of `pm_card_authorization_expires`: short enough for a test to wait it out. */
export const shortAuthorizationWindowMs = 2_000

export const defaultRefundRule: RefundRule = { outcome: 'succeeded' }

const declined: FinalFailure = { code: 'card_declined', message: 'Your card was declined.' }
const insufficientFunds: FinalFailure = { code: 'insufficient_funds', message: 'Your card has insufficient funds.' }
const succeeded: Outcome = { kind: 'succeeded' }

const rules: ReadonlyMap<string, PaymentMethodRule> = new Map<string, PaymentMethodRule>([
  ['pm_card_visa', { outcome: succeeded }],
  ['pm_card_mastercard', { outcome: succeeded }],
  ['pm_card_declined', { outcome: { kind: 'failed', failure: declined } }],
  ['pm_card_insufficient_funds', { outcome: { kind: 'failed', failure: insufficientFunds } }],
  ['pm_card_async', { outcome: { kind: 'async', final: succeeded } }],
  ['pm_card_async_declined', { outcome: { kind: 'async', final: { kind: 'failed', failure: declined } } }],
  ['pm_card_requires_action', { outcome: { kind: 'requires_action' } }],
  ['pm_card_5xx_once', { outcome: succeeded, fault: 'error_5xx_once' }],
  ['pm_card_timeout_after_charge', { outcome: succeeded, fault: 'timeout_after_charge' }],
  // Charges succeed; their refunds behave as named.
  ['pm_card_refund_fails', { outcome: succeeded, refund: { outcome: 'failed' } }],
  ['pm_card_refund_async', { outcome: succeeded, refund: { outcome: 'async_succeeded' } }],
  ['pm_card_refund_async_fails', { outcome: succeeded, refund: { outcome: 'async_failed' } }],
  ['pm_card_refund_5xx_once', { outcome: succeeded, refund: { outcome: 'succeeded', fault: 'error_5xx_once' } }],
  ['pm_card_refund_timeout', { outcome: succeeded, refund: { outcome: 'succeeded', fault: 'timeout_after_refund' } }],
  // Charges succeed (authorized, with capture false); their captures or authorizations behave as named.
  ['pm_card_capture_5xx_once', { outcome: succeeded, capture: { fault: 'error_5xx_once' } }],
  ['pm_card_capture_timeout', { outcome: succeeded, capture: { fault: 'timeout_after_capture' } }],
  ['pm_card_authorization_expires', { outcome: succeeded, capture: { authorizationWindowMs: shortAuthorizationWindowMs } }],
])

/** The rule for a token, or undefined for a token the PSP does not know (400 invalid_payment_method). */
export function ruleFor (paymentMethod: string): PaymentMethodRule | undefined {
  return rules.get(paymentMethod)
}

export const knownPaymentMethods: readonly string[] = [...rules.keys()]
