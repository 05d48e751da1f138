// Expected failures of the console, with stable codes. Pages render them as an HTML error page
// with the code; a bug is anything else (logged, 500 internal_error).

export const consoleProblems = {
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  unauthenticated: { status: 401, title: 'Sign in first' },
  forbidden: { status: 403, title: 'Your role may not do this' },
  csrf_invalid: { status: 403, title: 'The form has expired or did not come from the console: reload the page and try again' },
  origin_invalid: { status: 403, title: 'The request did not come from the console' },
  login_failed: { status: 401, title: 'Wrong name or password' },
  login_locked: { status: 429, title: 'Too many failed sign-ins: wait and try again' },
  validation_failed: { status: 400, title: 'The request is not valid' },
  body_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Forms only' },
  conflict: { status: 409, title: 'The payment is not in a state this action applies to' },
  upstream_failed: { status: 502, title: 'A component the console asked did not answer as expected' },
  internal_error: { status: 500, title: 'Internal error' },
} as const

export type ConsoleProblemCode = keyof typeof consoleProblems

export class ConsoleProblem extends Error {
  readonly code: ConsoleProblemCode
  readonly status: number
  readonly detail: string | undefined

  constructor (code: ConsoleProblemCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ?? consoleProblems[code].title, options)
    this.code = code
    this.status = consoleProblems[code].status
    this.detail = detail
  }
}
