// The sandbox PSP's error codes. It answers like a real PSP, not like Ringpay: the body is
// `{"error": {"type", "code", "message", "param"?}}` (Stripe's shape), never problem+json, so the
// processors are written against a foreign API. Codes are stable; clients branch on `code`.

export type PspErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'idempotency_error'
  | 'rate_limit_error'
  | 'api_error'

export interface PspErrorSpec {
  status: number
  type: PspErrorType
  message: string
}

export const pspErrors = {
  authentication_required: { status: 401, type: 'authentication_error', message: 'No API key provided; send Authorization: Bearer <secret key>' },
  invalid_api_key: { status: 401, type: 'authentication_error', message: 'Invalid API key' },
  resource_missing: { status: 404, type: 'invalid_request_error', message: 'No such resource' },
  method_not_allowed: { status: 405, type: 'invalid_request_error', message: 'Method not allowed' },
  body_too_large: { status: 413, type: 'invalid_request_error', message: 'Request body too large' },
  invalid_json: { status: 400, type: 'invalid_request_error', message: 'Request body is not a JSON object' },
  parameter_missing: { status: 400, type: 'invalid_request_error', message: 'A required parameter is missing' },
  parameter_invalid: { status: 400, type: 'invalid_request_error', message: 'A parameter is invalid' },
  parameter_unknown: { status: 400, type: 'invalid_request_error', message: 'Unknown parameter' },
  amount_invalid: { status: 400, type: 'invalid_request_error', message: 'Amount must be a positive integer in minor units' },
  currency_invalid: { status: 400, type: 'invalid_request_error', message: 'Currency must be an active ISO 4217 code' },
  invalid_payment_method: { status: 400, type: 'invalid_request_error', message: 'No such payment method' },
  idempotency_key_missing: { status: 400, type: 'invalid_request_error', message: 'The Idempotency-Key header is required' },
  idempotency_key_mismatch: { status: 422, type: 'idempotency_error', message: 'Keys for idempotent requests can only be used with the same parameters they were first used with' },
  idempotency_key_in_use: { status: 409, type: 'idempotency_error', message: 'A request with this idempotency key is in progress; retry later' },
  charge_not_refundable: { status: 400, type: 'invalid_request_error', message: 'Only a succeeded charge can be refunded' },
  refund_amount_too_large: { status: 400, type: 'invalid_request_error', message: 'Refund amount is greater than what is left to refund on the charge' },
  charge_not_cancelable: { status: 400, type: 'invalid_request_error', message: 'Only a charge awaiting customer action or capture can be canceled' },
  charge_not_capturable: { status: 400, type: 'invalid_request_error', message: 'Only an uncaptured authorization (requires_capture) can be captured' },
  charge_already_captured: { status: 400, type: 'invalid_request_error', message: 'This charge was already captured' },
  capture_amount_too_large: { status: 400, type: 'invalid_request_error', message: 'Capture amount is greater than the authorized amount' },
  generation_exists: { status: 409, type: 'invalid_request_error', message: 'Charges were already generated with these parameters' },
  rate_limited: { status: 429, type: 'rate_limit_error', message: 'Too many requests; retry after the Retry-After delay' },
  internal_error: { status: 500, type: 'api_error', message: 'An error occurred on our side' },
  service_unavailable: { status: 503, type: 'api_error', message: 'Service temporarily unavailable; retry later' },
  shutting_down: { status: 503, type: 'api_error', message: 'The sandbox PSP is shutting down; retry later' },
} as const satisfies Record<string, PspErrorSpec>

export type PspErrorCode = keyof typeof pspErrors

/** An expected failure with a stable code. Anything else thrown is a bug. */
export class PspError extends Error {
  readonly code: PspErrorCode
  readonly status: number
  readonly param: string | undefined
  readonly retryAfterS: number | undefined

  constructor (code: PspErrorCode, opts: { message?: string, param?: string, retryAfterS?: number, cause?: unknown } = {}) {
    super(opts.message ?? pspErrors[code].message, { cause: opts.cause })
    this.name = 'PspError'
    this.code = code
    this.status = pspErrors[code].status
    this.param = opts.param
    this.retryAfterS = opts.retryAfterS
  }

  toBody (): { error: Record<string, string> } {
    const error: Record<string, string> = { type: pspErrors[this.code].type, code: this.code, message: this.message }
    if (this.param !== undefined) error.param = this.param
    return { error }
  }
}

/** The error a call answers when the runtime injected a server error (faults.ts serverError). */
export function injectedServerError (status: 500 | 503): PspError {
  return new PspError(status === 500 ? 'internal_error' : 'service_unavailable', { retryAfterS: status === 503 ? 1 : undefined })
}
