// What the processor's core knows of a PSP: a charge request, its outcome, and typed failures.
// PSP adapters (one module per provider) map between these and the provider's wire format.

export interface ChargeRequest {
  /** Our checkout id: the PSP idempotency key on every attempt, forever. */
  checkoutId: string
  merchantId: string
  /** Integer minor units. */
  amount: number
  currency: string
  paymentMethod: string
  description: string
}

export type ChargeOutcome =
  | { kind: 'succeeded', pspReference: string }
  | { kind: 'failed', pspReference: string, failureCode: string, failureMessage: string }
  | { kind: 'pending', pspReference: string }
  | { kind: 'requires_action', pspReference: string }
  /** The PSP said something we cannot trust (unknown status, other amount or currency): a person
   *  must look; the payment never becomes succeeded from it. */
  | { kind: 'flagged', pspReference: string, reason: string }

/**
 * What canceling a charge awaiting the customer came to: `canceled` (now or before: the call is
 * idempotent), or `not_cancelable`: the charge left requires_action first (the customer completed
 * it, or it failed), so the caller must find out whether money was taken.
 */
export type CancelOutcome = { kind: 'canceled' } | { kind: 'not_cancelable', detail: string }

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

  constructor (code: PspErrorCode, message: string, options: { httpStatus?: number, retryAfterMs?: number, cause?: unknown } = {}) {
    super(`${code}: ${message}`, { cause: options.cause })
    this.name = 'PspError'
    this.code = code
    this.retriable = pspErrorCodes[code].retriable
    this.httpStatus = options.httpStatus
    this.retryAfterMs = options.retryAfterMs
  }
}
