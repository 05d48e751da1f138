// The one registry of problem codes the public and internal APIs answer with. Each code is stable:
// clients branch on `code`, never on `title` or `detail`. test/errors.test.ts pins the count and
// checks that every code is documented in the OpenAPI document.

export interface ProblemSpec {
  status: number
  title: string
}

export const problems = {
  checkout_id_missing: { status: 400, title: 'Missing checkout id' },
  checkout_id_invalid: { status: 400, title: 'Invalid checkout id' },
  unauthorized: { status: 401, title: 'Missing or invalid API key' },
  // A restricted key (scope `read`: reads and reports) on a request that writes.
  api_key_scope_insufficient: { status: 403, title: 'This API key may only read' },
  // The internal API (#17 part 2): the caller's own service credential is missing or unknown, or
  // its service may not do what it asked (payment-svc/internal-auth.ts).
  internal_unauthorized: { status: 401, title: 'Missing or unknown internal service credential' },
  internal_forbidden: { status: 403, title: 'This service may not do this' },
  // The node's API keys file is unreadable or invalid: no key is accepted until a valid one is
  // loaded (fail closed, so a broken edit never keeps a revoked key alive).
  api_keys_unavailable: { status: 503, title: 'API keys are unavailable on this node; retry later' },
  not_found: { status: 404, title: 'Not found' },
  payment_not_found: { status: 404, title: 'Payment not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  unsupported_media_type: { status: 415, title: 'Content-Type must be application/json' },
  body_too_large: { status: 413, title: 'Request body too large' },
  invalid_json: { status: 400, title: 'Request body is not valid JSON' },
  validation_failed: { status: 400, title: 'Request body failed validation' },
  invalid_query: { status: 400, title: 'Invalid query parameter' },
  card_number_detected: { status: 400, title: 'Raw card numbers are not accepted; send a payment method token' },
  idempotency_key_reuse: { status: 409, title: 'Checkout id already used with different parameters' },
  idempotency_key_in_use: { status: 409, title: 'A request with this checkout id is in progress' },
  invalid_transition: { status: 409, title: 'Transition not allowed from the current status' },
  stale_version: { status: 409, title: 'Payment version has changed' },
  // POST /payments/{id}/cancel on a payment the processor has already claimed for charging, or
  // one that is final.
  payment_not_cancelable: { status: 409, title: 'Payment can no longer be canceled' },
  // Refunds (issue #14): only a succeeded payment is refunded; pending plus succeeded refunds
  // never exceed its amount; every refund request carries an Idempotency-Key.
  payment_not_refundable: { status: 409, title: 'Payment cannot be refunded' },
  refund_amount_exceeds_available: { status: 409, title: 'Refund amount exceeds what is left to refund' },
  refund_not_found: { status: 404, title: 'Refund not found' },
  // Manual capture (issue #14): only a manual payment at requires_capture is captured, for at
  // most what was authorized.
  payment_not_capturable: { status: 409, title: 'Payment cannot be captured' },
  capture_amount_exceeds_authorized: { status: 409, title: 'Capture amount exceeds the authorized amount' },
  idempotency_key_missing: { status: 400, title: 'Missing or invalid Idempotency-Key header' },
  // Merchant webhooks (issue #15, notifier/): endpoints and the events sent to them.
  webhook_endpoint_not_found: { status: 404, title: 'Webhook endpoint not found' },
  event_not_found: { status: 404, title: 'Event not found' },
  // https only, and only public addresses (no SSRF through a merchant's URL): notifier/ssrf.ts.
  webhook_url_not_allowed: { status: 400, title: 'Webhook URL not allowed' },
  webhook_endpoint_limit_reached: { status: 409, title: 'Too many webhook endpoints for this merchant' },
  webhook_endpoint_disabled: { status: 409, title: 'Webhook endpoint is disabled' },
  // Answered by nginx (limit_req / limit_conn per client IP, per API key, on the public server).
  rate_limited: { status: 429, title: 'Too many requests; retry later' },
  // The node: too many wrong API keys from this client IP; refused until the window ends.
  auth_attempts_exceeded: { status: 429, title: 'Too many failed API key attempts; retry later' },
  // The node: this merchant already holds its share of the node's long-polls.
  long_poll_limit: { status: 429, title: 'Too many long-polls in progress for this merchant; retry later' },
  overloaded: { status: 503, title: 'Node is at capacity; retry later' },
  shutting_down: { status: 503, title: 'Node is shutting down; retry later' },
  backlog_full: { status: 503, title: 'Unpublished change log is over its disk budget; retry later' },
  // Answered by nginx, not the node: the owning node is down (fail closed; its keys never move).
  node_unavailable: { status: 503, title: 'The node that owns this checkout id is unavailable' },
  node_timeout: { status: 504, title: 'The node that owns this checkout id did not answer in time' },
  request_timeout: { status: 408, title: 'Request was not received in time' },
  internal_error: { status: 500, title: 'Internal error' },
  webhook_signature_invalid: { status: 401, title: 'Webhook signature missing, malformed, stale or wrong' },
  unknown_provider: { status: 404, title: 'Unknown payment service provider' },
} as const satisfies Record<string, ProblemSpec>

export type ProblemCode = keyof typeof problems

export interface FieldError {
  field: string
  code: string
  message: string
}

/** An expected failure with a stable code. Anything else thrown is a bug. */
export class ProblemError extends Error {
  readonly code: ProblemCode
  readonly status: number
  readonly detail: string | undefined
  readonly errors: FieldError[] | undefined
  readonly retryAfterS: number | undefined
  readonly extra: Record<string, unknown> | undefined

  constructor (code: ProblemCode, opts: {
    detail?: string
    errors?: FieldError[]
    retryAfterS?: number
    extra?: Record<string, unknown>
    cause?: unknown
  } = {}) {
    super(`${code}: ${opts.detail ?? problems[code].title}`, { cause: opts.cause })
    this.name = 'ProblemError'
    this.code = code
    this.status = problems[code].status
    this.detail = opts.detail
    this.errors = opts.errors
    this.retryAfterS = opts.retryAfterS
    this.extra = opts.extra
  }

  toBody (): Record<string, unknown> {
    const body: Record<string, unknown> = {
      type: `https://ringpay.dev/problems/${this.code}`,
      title: problems[this.code].title,
      status: this.status,
      code: this.code,
    }
    if (this.detail !== undefined) body.detail = this.detail
    if (this.errors !== undefined) body.errors = this.errors
    if (this.extra !== undefined) Object.assign(body, this.extra)
    return body
  }
}
