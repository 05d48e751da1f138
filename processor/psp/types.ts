// What the processor's core knows of a PSP: a charge request, its outcome, and typed failures.
// PSP adapters (one module per provider) map between these and the provider's wire format.

export interface ChargeRequest {
  /** Our checkout id, the merchant's: with the merchant, the PSP idempotency key (chargeIdempotencyKey) on every attempt, forever. */
  checkoutId: string
  merchantId: string
  /** Integer minor units. */
  amount: number
  currency: string
  paymentMethod: string
  description: string
  /** Manual capture (issue #14): the PSP only authorizes (`capture: false`); absent for the usual charge. */
  manualCapture?: true
}

export type ChargeOutcome =
  /** amountCaptured: what a manual-capture charge captured (absent for the usual charge). */
  | { kind: 'succeeded', pspReference: string, amountCaptured?: number }
  | { kind: 'failed', pspReference: string, failureCode: string, failureMessage: string }
  | { kind: 'pending', pspReference: string }
  /** nextActionUrl: where the customer completes it (absent if the PSP gave none). */
  | { kind: 'requires_action', pspReference: string, nextActionUrl?: string }
  /** Manual capture: authorized, waiting for our capture (or a void). */
  | { kind: 'requires_capture', pspReference: string }
  /** Canceled at the PSP (a void, or an authorization that expired uncaptured): nothing taken. */
  | { kind: 'canceled', pspReference: string, failureCode: string, failureMessage: string }
  /** The PSP said something we cannot trust (unknown status, other amount or currency): a person
   *  must look; the payment never becomes succeeded from it. */
  | { kind: 'flagged', pspReference: string, reason: string }

/**
 * What canceling a charge awaiting the customer came to: `canceled` (now or before: the call is
 * idempotent), or `not_cancelable`: the charge left requires_action first (the customer completed
 * it, or it failed), so the caller must find out whether money was taken.
 */
export type CancelOutcome = { kind: 'canceled' } | { kind: 'not_cancelable', detail: string }

/** A refund of (part of) a succeeded charge. */
export interface RefundRequest {
  /** Our refund id: the PSP idempotency key is derived from it (refundIdempotencyKey), forever. */
  refundId: string
  merchantId: string
  checkoutId: string
  /** The PSP's charge (the payment's psp_reference). */
  chargeReference: string
  /** Integer minor units of the payment's currency. */
  amount: number
  currency: string
}

export type RefundOutcome =
  | { kind: 'succeeded', pspReference: string }
  | { kind: 'failed', pspReference: string, failureCode: string, failureMessage: string }
  | { kind: 'pending', pspReference: string }
  /** The PSP said something we cannot trust (other amount, currency, refund): never a success. */
  | { kind: 'flagged', pspReference: string, reason: string }

/**
 * The PSP idempotency key of a payment's charge: `<merchant_id>/<checkout_id>`, from the payment's
 * identity (issue #17 part 5: checkout ids are per merchant), so every attempt, every processor, a
 * redelivery and a replay use the same key, and two merchants' payments of one checkout id are two
 * charges. Exactly one '/' (neither id may hold one): never a capture's key (two) nor a refund's (none).
 */
export function chargeIdempotencyKey (merchantId: string, checkoutId: string): string {
  return `${merchantId}/${checkoutId}`
}

/**
 * The PSP idempotency key of a refund: from our refund id alone (random, unique across merchants),
 * so every attempt, every processor, a redelivery after a crash and a dead-letter replay use the
 * same key, and the PSP makes at most one refund per refund id. Prefixed and without a '/', so it
 * never equals a charge's or a capture's key even at a PSP that shares one key space.
 */
export function refundIdempotencyKey (refundId: string): string {
  return `refund_${refundId}`
}

/** The capture of a manual payment's authorization (POST /v1/charges/{id}/capture). */
export interface CaptureRequest {
  merchantId: string
  checkoutId: string
  /** The PSP's charge (the payment's psp_reference). */
  chargeReference: string
  /** Integer minor units to capture (≤ the authorized amount; the rest is released). */
  amount: number
  currency: string
}

/**
 * What a capture came to: `captured` (now or before: the call is idempotent), or `not_capturable`
 * (the authorization is no longer capturable: voided, expired, or captured otherwise), when the
 * caller must look at the charge to learn what happened.
 */
export type CaptureOutcome =
  | { kind: 'captured', pspReference: string, amountCaptured: number }
  | { kind: 'not_capturable', detail: string }

/**
 * The PSP idempotency key of a payment's capture: `capture/<merchant_id>/<checkout_id>`, from the
 * payment's identity (a payment has at most one capture), so every attempt, processor, redelivery
 * and replay asks for the same capture. Two '/': never a charge's key (one) nor a refund's (none).
 */
export function captureIdempotencyKey (merchantId: string, checkoutId: string): string {
  return `capture/${merchantId}/${checkoutId}`
}

export const pspErrorCodes = {
  psp_timeout: { retriable: true },
  psp_connection: { retriable: true },
  psp_unavailable: { retriable: true },
  psp_rate_limited: { retriable: true },
  psp_in_progress: { retriable: true },
  psp_rejected: { retriable: false },
  psp_auth: { retriable: false },
  psp_idempotency_mismatch: { retriable: false },
  psp_bad_response: { retriable: false },
} as const
export type PspErrorCode = keyof typeof pspErrorCodes

/** An expected PSP failure. Whether it is retriable is decided here, where it is created. */
export class PspError extends Error {
  readonly code: PspErrorCode
  readonly retriable: boolean
  readonly httpStatus: number | undefined
  readonly retryAfterMs: number | undefined
  /**
   * Issue #16: the PSP provably never processed this request (a refused connect, a 429, our own
   * open circuit breaker): one of the proofs that allow moving a payment to another PSP.
   */
  readonly notReceived: boolean

  constructor (code: PspErrorCode, message: string, options: { httpStatus?: number, retryAfterMs?: number, cause?: unknown, notReceived?: boolean } = {}) {
    super(`${code}: ${message}`, { cause: options.cause })
    this.name = 'PspError'
    this.code = code
    this.retriable = pspErrorCodes[code].retriable
    this.httpStatus = options.httpStatus
    this.retryAfterMs = options.retryAfterMs
    this.notReceived = options.notReceived === true
  }
}
