// Records every PSP attempt in Postgres. Rows are buffered and written in one multi-row INSERT
// per flush; the buffer is bounded, and a full buffer makes callers wait (backpressure), so a
// slow or absent Postgres slows charging down instead of growing memory.

import type pg from 'pg'
import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import { maskCardNumbers } from '../lib/card-numbers.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import { sealAttemptTokens } from './sealed-columns.ts'

/** A PSP request or answer as stored: a provider's text could hold a card number; it is masked. */
function storedJson (value: unknown): string {
  return maskCardNumbers(JSON.stringify(value ?? null), true)
}

export interface AttemptRow {
  merchantId: string
  checkoutId: string
  provider: string
  idempotencyKey: string
  attempt: number
  request: unknown
  httpStatus: number | undefined
  response: unknown
  outcome: string
  errorCode: string | undefined
  latencyMs: number
  startedAt: Date
}

/** Named: prepared once per connection (see projection.ts); a changed text needs a new name. */
const insertStatementName = 'ringpay_insert_psp_attempts_v2'
const insertSql = `
INSERT INTO psp_attempts (checkout_id, provider, idempotency_key, attempt, request, http_status, response, outcome,
                          error_code, latency_ms, started_at, merchant_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[], $6::int[], $7::jsonb[], $8::text[],
                     $9::text[], $10::int[], $11::timestamptz[], $12::text[])`

export interface AttemptLogOptions {
  rowsMax: number
  flushIntervalMs: number
  backoffBaseDelayMs: number
  backoffDelayMsMax: number
}

export class AttemptLog {
  readonly #pool: pg.Pool
  /** Seals the payment method token in each stored request and answer (issue #17 part 7). */
  readonly #sealer: FieldSealer
  readonly #options: AttemptLogOptions
  readonly #log: Logger
  #rows: AttemptRow[] = []
  #flushing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #spaceWaiters: Array<() => void> = []

  constructor (pool: pg.Pool, sealer: FieldSealer, options: AttemptLogOptions, log: Logger) {
    this.#pool = pool
    this.#sealer = sealer
    this.#options = options
    this.#log = log
  }

  async record (row: AttemptRow): Promise<void> {
    while (this.#rows.length >= this.#options.rowsMax) {
      await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve))
    }
    this.#rows.push(row)
    this.#timer ??= setTimeout(() => { this.#timer = undefined; void this.flush() }, this.#options.flushIntervalMs)
  }

  /** Writes everything buffered; retries (with backoff) until Postgres takes it. */
  flush (): Promise<void> {
    this.#flushing ??= this.#flushAll().finally(() => { this.#flushing = undefined })
    return this.#flushing
  }

  async #flushAll (): Promise<void> {
    for (let attempt = 0; this.#rows.length > 0;) {
      const rows = this.#rows.slice(0, this.#options.rowsMax)
      const stored = rows.map((r) => sealAttemptTokens(this.#sealer, r.checkoutId, r.attempt, r.request, r.response))
      try {
        await this.#pool.query({ name: insertStatementName, text: insertSql, values: [
          rows.map((r) => r.checkoutId), rows.map((r) => r.provider), rows.map((r) => r.idempotencyKey),
          rows.map((r) => r.attempt), stored.map((s) => storedJson(s.request)), rows.map((r) => r.httpStatus ?? null),
          stored.map((s) => storedJson(s.response)), rows.map((r) => r.outcome), rows.map((r) => r.errorCode ?? null),
          rows.map((r) => r.latencyMs), rows.map((r) => r.startedAt), rows.map((r) => r.merchantId),
        ] })
        this.#rows.splice(0, rows.length)
        attempt = 0
        for (const wake of this.#spaceWaiters.splice(0)) wake()
      } catch (error) {
        this.#log.warn({ err: error, rows: rows.length }, 'psp attempt log write failed; retrying')
        await sleep(backoffDelayMs({ baseDelayMs: this.#options.backoffBaseDelayMs, delayMsMax: this.#options.backoffDelayMsMax }, attempt++))
      }
    }
  }
}
