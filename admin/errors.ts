// The admin API's problem codes: its own registry, apart from the merchant API's
// (payment-svc/errors.ts), documented in openapi/ringpay-admin.openapi.json (admin/test/openapi.test.ts
// checks both ways). Each code is stable: operators' tools branch on `code`.

import type { ServerResponse } from 'node:http'
import type { KeysFileErrorCode } from './keys-file.ts'

export const adminProblems = {
  unauthorized: { status: 401, title: 'Missing or invalid operator token' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  unsupported_media_type: { status: 415, title: 'Content-Type must be application/json' },
  body_too_large: { status: 413, title: 'Request body too large' },
  invalid_json: { status: 400, title: 'Request body is not valid JSON' },
  validation_failed: { status: 400, title: 'Request failed validation' },
  request_timeout: { status: 408, title: 'Request was not received in time' },
  merchant_exists: { status: 409, title: 'Merchant already exists' },
  merchant_not_found: { status: 404, title: 'Merchant not found' },
  api_key_not_found: { status: 404, title: 'API key not found' },
  // Roll of a key that is revoked, rolled or expired (`state` says which): roll its successor.
  api_key_not_active: { status: 409, title: 'Only an active API key can be rolled' },
  api_key_limit_reached: { status: 409, title: 'The merchant holds the most working keys allowed' },
  // The keys file cannot be read or is not one the nodes accept: nothing is changed until an
  // operator repairs it (the nodes refuse every key meanwhile: fail closed).
  keys_file_invalid: { status: 503, title: 'The API keys file is unusable; repair it first' },
  keys_file_full: { status: 409, title: 'The API keys file is at its size limit' },
  keys_file_busy: { status: 503, title: 'Another change holds the API keys file; retry' },
  internal_error: { status: 500, title: 'Internal error' },
} as const

export type AdminProblemCode = keyof typeof adminProblems

export class AdminProblem extends Error {
  readonly code: AdminProblemCode
  readonly status: number
  readonly detail: string | undefined
  readonly errors: Array<{ field: string, code: string, message: string }> | undefined
  readonly retryAfterS: number | undefined
  readonly extra: Record<string, unknown> | undefined

  constructor (code: AdminProblemCode, opts: { detail?: string, errors?: Array<{ field: string, code: string, message: string }>, retryAfterS?: number, extra?: Record<string, unknown>, cause?: unknown } = {}) {
    super(`${code}: ${opts.detail ?? adminProblems[code].title}`, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'AdminProblem'
    this.code = code
    this.status = adminProblems[code].status
    this.detail = opts.detail
    this.errors = opts.errors
    this.retryAfterS = opts.retryAfterS
    this.extra = opts.extra
  }

  toBody (): Record<string, unknown> {
    return {
      type: `https://ringpay.dev/problems/admin/${this.code}`,
      title: adminProblems[this.code].title,
      status: this.status,
      code: this.code,
      ...(this.detail === undefined ? {} : { detail: this.detail }),
      ...(this.errors === undefined ? {} : { errors: this.errors }),
      ...this.extra,
    }
  }
}

/** A refusal of the keys-file module, as the API answers it (the codes are the same words). */
export function problemOfKeysFile (code: KeysFileErrorCode, message: string, field: string | undefined, extra: Record<string, unknown> | undefined, cause: unknown): AdminProblem {
  if (code === 'invalid_argument') return new AdminProblem('validation_failed', { errors: [{ field: field ?? 'request', code: 'invalid', message }], cause })
  if (code === 'keys_file_busy') return new AdminProblem(code, { retryAfterS: 1, cause })
  // The file's own problems are for the service's log, not the answer (the message names the path).
  if (code === 'keys_file_invalid' || code === 'keys_file_full') return new AdminProblem(code, { cause })
  return new AdminProblem(code, { detail: message, ...(extra === undefined ? {} : { extra }), cause })
}

export function sendAdminProblem (res: ServerResponse, problem: AdminProblem): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const payload = JSON.stringify(problem.toBody())
  const headers: Record<string, string | number> = { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(payload) }
  if (problem.retryAfterS !== undefined) headers['retry-after'] = String(problem.retryAfterS)
  if (problem.code === 'body_too_large' || problem.code === 'request_timeout') headers.connection = 'close'
  res.writeHead(problem.status, headers)
  res.end(payload)
}
