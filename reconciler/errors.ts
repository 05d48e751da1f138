// The reconciler's expected failures, each with a stable code. Anything else thrown is a bug.
// Every one of these makes the CLI exit 2 and stores nothing for the run.

export const reconcileErrorCodes = {
  /** Bad command-line arguments or environment. */
  bad_args: 'bad arguments',
  /** The PSP could not be reached, or the connection broke mid-report. */
  psp_unreachable: 'the PSP could not be reached',
  /** The PSP answered something other than 200 for the report. */
  psp_http_status: 'the PSP refused the report request',
  /** A line of the report is not a valid settlement row (column count, number, date, ...). */
  report_malformed: 'the settlement report is malformed',
  /** The report ends in the middle of a line (no final newline), or has no header. */
  report_truncated: 'the settlement report is truncated',
  /** Postgres could not be reached or failed a statement. */
  db_unavailable: 'the database is unavailable',
  /** The database has no reconciliation tables (migrations not applied). */
  db_schema: 'the database schema is missing the reconciliation tables',
  /** Writing the CSV report failed. */
  output_failed: 'the report file could not be written',
} as const

export type ReconcileErrorCode = keyof typeof reconcileErrorCodes

export class ReconcileError extends Error {
  readonly code: ReconcileErrorCode
  /** Line of the PSP report (header = 1) the error is about, when it is about one. */
  readonly line: number | undefined

  constructor (code: ReconcileErrorCode, message: string, options: { line?: number, cause?: unknown } = {}) {
    super(`${code}: ${options.line !== undefined ? `line ${options.line}: ` : ''}${message}`, { cause: options.cause })
    this.name = 'ReconcileError'
    this.code = code
    this.line = options.line
  }
}
