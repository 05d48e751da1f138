// One reconciliation run: a PSP's settlement report for one UTC date against our payments, in one
// Postgres transaction (a run that fails stores nothing).
//
// 1. The report is streamed (undici) through the CSV splitter; every line is validated and sent to
//    Postgres with COPY into a temp staging table (`recon_psp`), a few thousand rows per write, with
//    backpressure: memory stays flat whatever the day's size.
// 2. Set-based SQL: every report line joined to its payment of ours (hash join on psp_reference,
//    then index probes by checkout id for the lines left) into a temp table; duplicate lines (two
//    small aggregates); then one INSERT ... SELECT of the classified lines into
//    `reconciliation_items`, and one of the payments of ours that succeeded on the date and that no
//    line accounts for (anti-join).
//    Refund lines (`type = 'refund'`) against our refunds the same way, in refunds.ts; the charge
//    statements here only read charge lines.
// 3. Per-currency totals (PSP gross, fees, net; our gross net of refunds) and the run row; the
//    date's previous current run (if any) is marked superseded by this one.
//
// The cut-off rule (README "Cut-off rules"):
// - Our side of date D: payments with status succeeded and updated_at (the instant the node
//   recorded the success) in [D 00:00, D+1 00:00) UTC.
// - A line of D's report whose payment we have as succeeded on D-1 or D+1 is `matched` with a note
//   (day_offset -1 / +1); further away it is `date_mismatch`.
// - A payment of ours succeeded on D with no line in D's report: if the current run of another
//   date has a line for it (a cross-day match, found through day_offset), it is `matched` with a
//   note when that date is D-1 or D+1, else `date_mismatch`; otherwise, while D-1 or D+1 has no
//   current run yet, it is `pending_settlement` (not a discrepancy); once both have been
//   reconciled, `missing_at_psp`. Reconciling a date reruns a neighbour date whose current run
//   has pending rows (reconcileWithFollowUps), so "pending until D+1 is reconciled" holds
//   without anyone remembering to rerun D.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { Logger } from '../lib/log.ts'
import { discrepancyCount, emptyCounts, isItemClass, type ClassCounts } from './classes.ts'
import { CsvSplitter, type CsvRecord } from './csv.ts'
import { addDays, isDate, ourWindow } from './dates.ts'
import { ReconcileError } from './errors.ts'
import { reconcilerLimits as limits } from './limits.ts'
import { unreachable, type ReportSource } from './psp-source.ts'
import { classifyOurRefunds, classifyRefundLines } from './refunds.ts'
import { checkHeader, stagingColumns, stagingLine } from './settlement-rows.ts'

export type RunTrigger = 'schedule' | 'cli' | 'admin' | 'follow_up' | 'test'

export interface ReconcileRequest {
  psp: string
  /** UTC report date, YYYY-MM-DD. */
  date: string
  trigger: RunTrigger
}

export interface Progress {
  psp: string
  date: string
  phase: 'download' | 'classify' | 'store'
  rows: number
  bytes: number
}

export interface CurrencyTotals {
  currency: string
  pspRows: number
  /** Sums of the report's amount, fee and net columns (minor units). */
  pspAmount: bigint
  pspFee: bigint
  pspNet: bigint
  /**
   * Our side of the date in this currency: succeeded payments plus succeeded refunds (rows), and
   * their amounts less the refunds' (so it compares with the PSP's gross, where refunds are
   * negative). A canceled payment's charge given back whole counts on neither side of ours: its
   * charge and refund lines net to zero at the PSP.
   */
  internalRows: number
  internalAmount: bigint
}

export interface RunResult {
  runId: number
  psp: string
  date: string
  trigger: RunTrigger
  /** The run this one replaced as the date's current result. */
  supersededRunId: number | null
  startedAt: Date
  durationMs: number
  pspRows: number
  internalRows: number
  counts: ClassCounts
  discrepancies: number
  pending: number
  totals: CurrencyTotals[]
  /** Whether D-1 and D+1 had current runs (if not, unmatched payments of ours are pending). */
  neighboursReconciled: boolean
  /** Where the time went, ms: download (stream + COPY), classify, items (PSP charge lines), ours (payments), refunds (both sides), finish (totals, run row, commit). */
  phasesMs: Record<'download' | 'classify' | 'items' | 'ours' | 'refunds' | 'finish', number>
}

export interface ReconcileDeps {
  pool: pg.Pool
  source: ReportSource
  log?: Logger
  onProgress?: (progress: Progress) => void
  signal?: AbortSignal
}

/** First key of the per-(psp, date) advisory lock: two runs of one date never interleave. */
const runLockKey = 0x5245434f // "RECO"

const stagingDdl = `
CREATE TEMP TABLE recon_psp (
  line bigint NOT NULL,
  psp_reference text NOT NULL,
  checkout_id text NOT NULL,
  merchant_id text NOT NULL,
  amount bigint NOT NULL,
  currency text NOT NULL,
  fee bigint NOT NULL,
  net bigint NOT NULL,
  status text NOT NULL,
  charged_at timestamptz NOT NULL,
  type text NOT NULL,
  charge text NOT NULL,
  refund_reference text NOT NULL
) ON COMMIT DROP`

// Every report line, with the payment of ours it is about: the one holding its psp_reference
// (hash join), else (fixUpSql, only for the lines left) the one with its merchant and checkout id
// (index probes): checkout ids are per merchant (issue #17 part 5), so two merchants' payments of
// one checkout id are two payments, each settled by its own line.
// Our amount is what the payment took: a manual-capture payment's amount_captured (issue #14, what
// the PSP settles), else its amount (amount_captured is NULL for an automatic payment).
const oursColumns = `
       p.merchant_id AS our_merchant_id, p.checkout_id AS our_checkout_id, COALESCE(p.amount_captured, p.amount) AS our_amount, p.currency::text AS our_currency,
       p.status AS our_status, p.psp_reference AS our_psp_reference, p.amount_refunded AS our_amount_refunded,
       CASE WHEN p.status = 'succeeded' THEN p.updated_at END AS our_succeeded_at,
       CASE WHEN p.status = 'succeeded' THEN (p.updated_at AT TIME ZONE 'UTC')::date - $1::date END AS day_offset`
const joinSql = `
CREATE TEMP TABLE recon_joined ON COMMIT DROP AS
SELECT s.line, s.psp_reference, s.checkout_id AS psp_checkout_id, s.merchant_id, s.amount, s.currency, s.fee, s.net,
       s.status, s.charged_at, (p.checkout_id IS NOT NULL) AS by_ref, ${oursColumns}
FROM recon_psp s
LEFT JOIN payments p ON p.psp_reference = s.psp_reference
WHERE s.type = 'charge'`

// Two payments of ours holding one psp_reference (never supposed to happen) join one line twice:
// the line keeps one of them (the smallest merchant and checkout id); the other is then a payment
// of ours that no line settles, listed as such.
const sharedReferenceSql = `
DELETE FROM recon_joined a USING recon_joined b
WHERE a.line = b.line AND (a.our_merchant_id, a.our_checkout_id) > (b.our_merchant_id, b.our_checkout_id)`

const fixUpSql = `
UPDATE recon_joined j SET by_ref = false,
       our_merchant_id = p.merchant_id, our_checkout_id = p.checkout_id, our_amount = COALESCE(p.amount_captured, p.amount), our_currency = p.currency::text, our_status = p.status,
       our_psp_reference = p.psp_reference, our_amount_refunded = p.amount_refunded,
       our_succeeded_at = CASE WHEN p.status = 'succeeded' THEN p.updated_at END,
       day_offset = CASE WHEN p.status = 'succeeded' THEN (p.updated_at AT TIME ZONE 'UTC')::date - $1::date END
FROM payments p
WHERE j.our_checkout_id IS NULL AND p.merchant_id = j.merchant_id AND p.checkout_id = j.psp_checkout_id`

// Lines that are duplicates:
// - ref: the line repeats the psp_reference of an earlier line. When the report came sorted by
//   psp_reference with no two equal neighbours (the download checks that in passing), there are
//   none and the aggregate is skipped.
// - charge: several lines about one payment of ours that holds no psp_reference (matched by
//   checkout id): all but the first. (A line about a payment that holds another psp_reference is a
//   duplicate charge too; that needs no aggregate, see pspItemsSql. Two lines about a payment that
//   holds one of their references: the other line is matched by checkout id and so falls there.)
const refDupsSql = `
  SELECT j.line FROM recon_joined j
  JOIN (SELECT psp_reference, min(line) AS first_line FROM recon_joined GROUP BY psp_reference HAVING count(*) > 1) r
    USING (psp_reference)
  WHERE j.line > r.first_line`
const duplicatesSql = (refDupsPossible: boolean): string => `
CREATE TEMP TABLE recon_duplicates ON COMMIT DROP AS
WITH ref_dups AS MATERIALIZED (${refDupsPossible ? refDupsSql : 'SELECT NULL::bigint AS line WHERE false'}),
charge_groups AS (
  SELECT our_merchant_id, our_checkout_id, min(line) AS first_line FROM recon_joined j
  WHERE NOT by_ref AND our_checkout_id IS NOT NULL AND our_psp_reference IS NULL
    AND NOT EXISTS (SELECT 1 FROM ref_dups d WHERE d.line = j.line)
  GROUP BY our_merchant_id, our_checkout_id HAVING count(*) > 1
)
SELECT line, 'ref' AS kind FROM ref_dups
UNION ALL
SELECT j.line, 'charge' FROM recon_joined j JOIN charge_groups g USING (our_merchant_id, our_checkout_id)
WHERE NOT j.by_ref AND j.our_psp_reference IS NULL AND j.line > g.first_line
  AND NOT EXISTS (SELECT 1 FROM ref_dups d WHERE d.line = j.line)`

// A charge the PSP took for a payment we canceled, given back whole (payment-svc's
// refundCanceledCharge: the payment's only refund, amount_refunded = amount once it succeeded):
// the money is back, so the charge line is matched (its refund line is matched on its own).
const chargeGivenBack = `r.status = 'succeeded' AND r.our_status = 'canceled' AND r.our_amount_refunded = r.our_amount
           AND r.amount = r.our_amount AND r.currency = r.our_currency`

// Precedence of the classes (first that holds): duplicate line (same psp_reference again) →
// missing_internally → duplicate charge (another line accounts for our payment, or our payment
// holds another psp_reference) → matched (a canceled payment's charge given back whole) →
// status_mismatch → currency_mismatch → amount_mismatch → date_mismatch (|day_offset| > 1) →
// matched (with a note when day_offset is -1 or +1).
const pspItemsSql = `
WITH ins AS (
  INSERT INTO reconciliation_items (run_id, class, note, psp_line, psp_reference, checkout_id, psp_checkout_id, merchant_id,
    psp_amount, internal_amount, psp_currency, internal_currency, fee, net, psp_status, internal_status, psp_charged_at,
    internal_succeeded_at, day_offset)
  SELECT $1,
         CASE
           WHEN d.kind = 'ref' THEN 'duplicate_at_psp'
           WHEN r.our_checkout_id IS NULL THEN 'missing_internally'
           WHEN d.kind = 'charge' THEN 'duplicate_at_psp'
           WHEN r.our_psp_reference IS NOT NULL AND r.our_psp_reference <> r.psp_reference THEN 'duplicate_at_psp'
           WHEN ${chargeGivenBack} THEN 'matched'
           WHEN r.status <> 'succeeded' OR r.our_status <> 'succeeded' THEN 'status_mismatch'
           WHEN r.currency <> r.our_currency THEN 'currency_mismatch'
           WHEN r.amount <> r.our_amount THEN 'amount_mismatch'
           WHEN abs(r.day_offset) > 1 THEN 'date_mismatch'
           ELSE 'matched'
         END,
         CASE
           WHEN d.kind = 'ref' THEN 'psp_reference repeats an earlier line of the report'
           WHEN r.our_checkout_id IS NULL THEN NULL
           WHEN d.kind = 'charge' THEN 'another line of the report already settles this payment'
           WHEN r.our_psp_reference IS NOT NULL AND r.our_psp_reference <> r.psp_reference
             THEN 'our payment holds psp_reference ' || r.our_psp_reference
           WHEN ${chargeGivenBack} THEN 'canceled here, charged by the PSP anyway: the whole charge was refunded'
           WHEN r.status <> 'succeeded' OR r.our_status <> 'succeeded' THEN NULL
           WHEN r.currency <> r.our_currency OR r.amount <> r.our_amount THEN NULL
           WHEN r.day_offset = -1 THEN 'succeeded here the previous day (' || ($2::date - 1) || '): within the cut-off grace'
           WHEN r.day_offset = 1 THEN 'succeeded here the next day (' || ($2::date + 1) || '): within the cut-off grace'
           WHEN r.day_offset <> 0 THEN 'succeeded here on ' || ($2::date + r.day_offset) || ', outside the one-day cut-off grace'
         END,
         r.line, r.psp_reference, COALESCE(r.our_checkout_id, r.psp_checkout_id), r.psp_checkout_id, COALESCE(r.our_merchant_id, r.merchant_id),
         r.amount, r.our_amount, r.currency, r.our_currency, r.fee, r.net, r.status, r.our_status, r.charged_at,
         r.our_succeeded_at, r.day_offset
  FROM recon_joined r LEFT JOIN recon_duplicates d ON d.line = r.line
  RETURNING class
)
SELECT class, count(*)::bigint AS n FROM ins GROUP BY class`

// Payments of ours that succeeded on the date and that no line of the report accounts for (a
// duplicate line does not). A cross-day match is a line in the current run of another date.
const ourItemsSql = `
WITH leftover AS MATERIALIZED (
  SELECT p.checkout_id, p.psp_reference, p.merchant_id, COALESCE(p.amount_captured, p.amount) AS amount, p.currency, p.status, p.updated_at
  FROM payments p
  WHERE p.status = 'succeeded' AND p.updated_at >= $3 AND p.updated_at < $4
    -- Issue #16: only the payments this PSP charged (NULL: from before routing, the sandbox's).
    AND COALESCE(p.psp_provider, 'sandbox') = $5
    AND NOT EXISTS (
      SELECT 1 FROM recon_joined c
      WHERE c.our_checkout_id = p.checkout_id AND c.our_merchant_id = p.merchant_id
        AND (c.our_psp_reference IS NULL OR c.our_psp_reference = c.psp_reference)
        AND NOT EXISTS (SELECT 1 FROM recon_duplicates d WHERE d.line = c.line))
),
ins AS (
  INSERT INTO reconciliation_items (run_id, class, note, psp_reference, checkout_id, merchant_id, internal_amount,
    internal_currency, internal_status, internal_succeeded_at, day_offset)
  SELECT $1,
         CASE WHEN x.report_date IS NULL THEN (CASE WHEN $6 THEN 'missing_at_psp' ELSE 'pending_settlement' END)
              WHEN abs(x.report_date - $2::date) = 1 THEN 'matched'
              ELSE 'date_mismatch' END,
         CASE WHEN x.report_date IS NULL THEN (CASE WHEN $6 THEN NULL
                ELSE 'not in this report; final once ' || ($2::date - 1) || ' and ' || ($2::date + 1) || ' are reconciled' END)
              ELSE 'settled by the PSP on ' || x.report_date || ' (line ' || x.psp_line || ' of that report, '
                   || x.class || ' there)' END,
         p.psp_reference, p.checkout_id, p.merchant_id, p.amount, p.currency::text, p.status, p.updated_at,
         x.report_date - $2::date
  FROM leftover p
  LEFT JOIN LATERAL (
    SELECT r.report_date, i.psp_line, i.class
    FROM reconciliation_items i JOIN reconciliation_runs r ON r.id = i.run_id
    WHERE i.merchant_id = p.merchant_id AND i.checkout_id = p.checkout_id AND i.day_offset <> 0 AND i.psp_line IS NOT NULL AND i.line_type = 'charge'
      AND i.class <> 'duplicate_at_psp'
      AND r.is_current AND r.psp = $5 AND r.report_date <> $2::date
    ORDER BY abs(r.report_date - $2::date), r.report_date
    LIMIT 1
  ) x ON true
  RETURNING class
)
SELECT class, count(*)::bigint AS n FROM ins GROUP BY class`

// Our side of the date per currency (see CurrencyTotals.internalRows).
const ourTotalsSql = `
SELECT currency, sum(n)::bigint AS n, sum(amount)::text AS amount FROM (
  -- A manually captured payment settles its captured amount (issue #14), not the authorized one.
  SELECT currency::text AS currency, count(*) AS n, sum(COALESCE(amount_captured, amount)) AS amount FROM payments
  WHERE status = 'succeeded' AND updated_at >= $1 AND updated_at < $2 AND COALESCE(psp_provider, 'sandbox') = $3 GROUP BY currency
  UNION ALL
  SELECT f.currency::text, count(*), -sum(f.amount) FROM refunds f JOIN payments p ON p.merchant_id = f.merchant_id AND p.checkout_id = f.checkout_id
  WHERE f.status = 'succeeded' AND f.updated_at >= $1 AND f.updated_at < $2 AND p.status <> 'canceled'
    AND COALESCE(p.psp_provider, 'sandbox') = $3 GROUP BY f.currency
) ours GROUP BY currency`

interface DbError { code?: string, message?: string }

function dbFailure (error: unknown): Error {
  if (error instanceof ReconcileError) return error
  const e = error as DbError
  if (e?.code === '42P01' && /reconciliation_/.test(e.message ?? '')) {
    return new ReconcileError('db_schema', `${e.message} (run the migrations: node db/migrate.ts)`, { cause: error })
  }
  if (e?.code === '42P01' || e?.code === '42703' || e?.code === '42601' || e?.code === '42883') return error as Error // a bug in our SQL
  return new ReconcileError('db_unavailable', e?.message ?? String(error), { cause: error })
}

interface CopiedReport {
  rows: number
  /** Of which refund lines. */
  refundRows: number
  bytes: number
  /** Every psp_reference >= the one before (JS string order): equal ones can only be neighbours. */
  sortedByReference: boolean
  adjacentEqualReferences: number
}

/** Streams the report into recon_psp. */
async function copyReport (client: pg.PoolClient, deps: ReconcileDeps, request: ReconcileRequest): Promise<CopiedReport> {
  const report = await deps.source(request.date, deps.signal)
  const copy = client.query(copyFrom(`COPY recon_psp (${stagingColumns.join(', ')}) FROM STDIN`))
  const copied = finished(copy)
  copied.catch(() => {}) // awaited below; an early failure must not be unhandled meanwhile
  const splitter = new CsvSplitter(limits.csvRecordCharsMax)
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let out = ''
  let buffered = 0
  let rows = 0
  let refundRows = 0
  let bytes = 0
  let sawHeader = false
  let previousReference = ''
  let sortedByReference = true
  let adjacentEqualReferences = 0
  let lastProgressMs = Date.now()
  const onRecord = (record: CsvRecord): void => {
    if (!sawHeader) {
      checkHeader(record.cells, record.line)
      sawHeader = true
      return
    }
    out += stagingLine(record.cells, record.line, request.date)
    buffered++
    rows++
    if (record.cells[10] === 'refund') refundRows++
    const reference = record.cells[1]!
    if (sortedByReference) {
      if (reference === previousReference) adjacentEqualReferences++
      else if (reference < previousReference) sortedByReference = false
      previousReference = reference
    }
  }
  const flush = async (): Promise<void> => {
    if (out === '') return
    const ok = copy.write(out)
    out = ''
    buffered = 0
    if (!ok) await once(copy, 'drain')
  }
  const decode = (chunk?: Uint8Array): string => {
    try {
      return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true })
    } catch (error) {
      throw new ReconcileError('report_malformed', 'the report is not valid UTF-8', { line: splitter.line, cause: error })
    }
  }
  const iterator = report.body[Symbol.asyncIterator]()
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>
      try {
        step = await iterator.next()
      } catch (error) {
        throw unreachable(error, `the report broke off near line ${splitter.line}`)
      }
      if (step.done === true) break
      bytes += step.value.byteLength
      splitter.push(decode(step.value), onRecord)
      if (buffered >= limits.copyChunkRows) await flush()
      if (deps.onProgress !== undefined && Date.now() - lastProgressMs >= limits.progressIntervalMs) {
        lastProgressMs = Date.now()
        deps.onProgress({ psp: request.psp, date: request.date, phase: 'download', rows, bytes })
      }
    }
    splitter.push(decode(), onRecord)
    splitter.end()
    if (!sawHeader) throw new ReconcileError('report_truncated', 'the report is empty (no header line)', { line: 1 })
    await flush()
    copy.end()
    await copied
  } catch (error) {
    report.close()
    copy.destroy(error instanceof Error ? error : new Error(String(error)))
    await copied.catch(() => {})
    throw error
  }
  deps.onProgress?.({ psp: request.psp, date: request.date, phase: 'download', rows, bytes })
  return { rows, refundRows, bytes, sortedByReference, adjacentEqualReferences }
}

function counted (rows: { class: string, n: string }[], into: ClassCounts): void {
  for (const row of rows) {
    assert.ok(isItemClass(row.class), `unknown class ${row.class}`)
    into[row.class] += Number(row.n)
  }
}

/** Reconciles one date for one PSP; replaces the date's current run (the old one stays as history). */
export async function reconcileDay (deps: ReconcileDeps, request: ReconcileRequest): Promise<RunResult> {
  assert.ok(isDate(request.date), `not a date: ${request.date}`)
  const startedAt = new Date()
  const t0 = performance.now()
  const { psp, date } = request
  let client: pg.PoolClient
  try {
    client = await deps.pool.connect()
  } catch (error) {
    throw dbFailure(error)
  }
  let committed = false
  try {
    const q = async <R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> => {
      try {
        return await client.query<R>(sql, params)
      } catch (error) {
        throw dbFailure(error)
      }
    }
    await q('BEGIN')
    await q('SELECT pg_advisory_xact_lock($1, hashtext($2))', [runLockKey, `${psp}/${date}`])
    await q(stagingDdl)
    const phasesMs = { download: 0, classify: 0, items: 0, ours: 0, refunds: 0, finish: 0 }
    let mark = performance.now()
    const lap = (phase: keyof typeof phasesMs): void => {
      const now = performance.now()
      phasesMs[phase] = Math.round(now - mark)
      mark = now
    }
    let copiedRows: CopiedReport
    try {
      copiedRows = await copyReport(client, deps, request)
    } catch (error) {
      throw dbFailure(error)
    }
    lap('download')
    deps.signal?.throwIfAborted()
    deps.onProgress?.({ psp, date, phase: 'classify', rows: copiedRows.rows, bytes: copiedRows.bytes })
    await q('ANALYZE recon_psp')
    const runId = Number((await q<{ id: string }>("SELECT nextval('reconciliation_runs_id_seq') AS id")).rows[0]!.id)
    const joined = await q(joinSql, [date])
    if ((joined.rowCount ?? 0) > copiedRows.rows - copiedRows.refundRows) await q(sharedReferenceSql)
    await q('ANALYZE recon_joined')
    await q(fixUpSql, [date])
    const refDupsPossible = !copiedRows.sortedByReference || copiedRows.adjacentEqualReferences > 0
    await q(duplicatesSql(refDupsPossible))
    lap('classify')
    deps.signal?.throwIfAborted()
    deps.onProgress?.({ psp, date, phase: 'store', rows: copiedRows.rows, bytes: copiedRows.bytes })
    const counts = emptyCounts()
    counted((await q(pspItemsSql, [runId, date])).rows, counts)
    lap('items')

    const neighbours = await q<{ n: string }>(
      'SELECT count(*)::bigint AS n FROM reconciliation_runs WHERE psp = $1 AND is_current AND report_date IN ($2::date - 1, $2::date + 1)',
      [psp, date])
    const neighboursReconciled = Number(neighbours.rows[0]!.n) === 2
    const window = ourWindow(date)
    counted((await q(ourItemsSql, [runId, date, window.from, window.to, psp, neighboursReconciled])).rows, counts)
    lap('ours')
    const refundRun = { runId, psp, date, window, neighboursReconciled, refDupsPossible }
    counted(await classifyRefundLines(q, refundRun, copiedRows.refundRows), counts)
    counted(await classifyOurRefunds(q, refundRun), counts)
    lap('refunds')

    const pspTotals = await q<{ currency: string, n: string, amount: string, fee: string, net: string }>(
      'SELECT currency, count(*)::bigint AS n, sum(amount)::text AS amount, sum(fee)::text AS fee, sum(net)::text AS net FROM recon_psp GROUP BY currency')
    const ourTotals = await q<{ currency: string, n: string, amount: string }>(ourTotalsSql, [window.from, window.to, psp])
    const totals = new Map<string, CurrencyTotals>()
    const totalsOf = (currency: string): CurrencyTotals => {
      let t = totals.get(currency)
      if (t === undefined) totals.set(currency, t = { currency, pspRows: 0, pspAmount: 0n, pspFee: 0n, pspNet: 0n, internalRows: 0, internalAmount: 0n })
      return t
    }
    for (const row of pspTotals.rows) Object.assign(totalsOf(row.currency), { pspRows: Number(row.n), pspAmount: BigInt(row.amount), pspFee: BigInt(row.fee), pspNet: BigInt(row.net) })
    for (const row of ourTotals.rows) Object.assign(totalsOf(row.currency), { internalRows: Number(row.n), internalAmount: BigInt(row.amount) })
    const sortedTotals = [...totals.values()].sort((a, b) => a.currency.localeCompare(b.currency))
    const internalRows = sortedTotals.reduce((n, t) => n + t.internalRows, 0)

    const discrepancies = discrepancyCount(counts)
    const durationMs = Math.round(performance.now() - t0)
    await q(`INSERT INTO reconciliation_runs (id, psp, report_date, is_current, trigger, started_at, finished_at, duration_ms,
               psp_rows, internal_rows, counts, discrepancies, pending)
             VALUES ($1, $2, $3, false, $4, $5, now(), $6, $7, $8, $9, $10, $11)`,
    [runId, psp, date, request.trigger, startedAt, durationMs, copiedRows.rows, internalRows, JSON.stringify(counts), discrepancies, counts.pending_settlement])
    const superseded = await q<{ id: string }>(
      'UPDATE reconciliation_runs SET is_current = false, superseded_by = $1 WHERE psp = $2 AND report_date = $3 AND is_current RETURNING id',
      [runId, psp, date])
    await q('UPDATE reconciliation_runs SET is_current = true WHERE id = $1', [runId])
    if (sortedTotals.length > 0) {
      await q(`INSERT INTO reconciliation_totals (run_id, currency, psp_rows, psp_amount, psp_fee, psp_net, internal_rows, internal_amount)
               SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::numeric[], $5::numeric[], $6::numeric[], $7::bigint[], $8::numeric[])`,
      [runId, ...[
        sortedTotals.map((t) => t.currency), sortedTotals.map((t) => t.pspRows), sortedTotals.map((t) => t.pspAmount.toString()),
        sortedTotals.map((t) => t.pspFee.toString()), sortedTotals.map((t) => t.pspNet.toString()),
        sortedTotals.map((t) => t.internalRows), sortedTotals.map((t) => t.internalAmount.toString()),
      ]])
    }
    await q('COMMIT')
    committed = true
    lap('finish')
    const result: RunResult = {
      runId,
      psp,
      date,
      trigger: request.trigger,
      supersededRunId: superseded.rows[0] === undefined ? null : Number(superseded.rows[0].id),
      startedAt,
      durationMs: Math.round(performance.now() - t0),
      pspRows: copiedRows.rows,
      internalRows,
      counts,
      discrepancies,
      pending: counts.pending_settlement,
      totals: sortedTotals,
      neighboursReconciled,
      phasesMs,
    }
    deps.log?.info({
      psp, report_date: date, run_id: runId, trigger: request.trigger, superseded_run_id: result.supersededRunId,
      duration_ms: result.durationMs, psp_rows: result.pspRows, psp_bytes: copiedRows.bytes, internal_rows: internalRows,
      counts, discrepancies, pending: result.pending, neighbours_reconciled: neighboursReconciled, phases_ms: phasesMs,
      totals: sortedTotals.map((t) => ({ currency: t.currency, psp_rows: t.pspRows, psp_amount: t.pspAmount.toString(), psp_fee: t.pspFee.toString(), psp_net: t.pspNet.toString(), internal_rows: t.internalRows, internal_amount: t.internalAmount.toString() })),
    }, 'reconciliation run')
    return result
  } catch (error) {
    if (!committed) await client.query('ROLLBACK').catch(() => {})
    deps.log?.error({ psp, report_date: date, trigger: request.trigger, err: error, code: (error as ReconcileError).code, line: (error as ReconcileError).line,
      duration_ms: Math.round(performance.now() - t0) }, 'reconciliation failed')
    throw error
  } finally {
    // A failed run may have cut a COPY short: do not hand that connection to anyone else.
    client.release(!committed)
  }
}

/** Current run id and pending rows of a date, if it has a current run. */
async function currentRun (pool: pg.Pool, psp: string, date: string): Promise<{ id: number, pending: number } | undefined> {
  let rows
  try {
    rows = (await pool.query<{ id: string, pending: string }>(
      'SELECT id, pending FROM reconciliation_runs WHERE psp = $1 AND report_date = $2 AND is_current', [psp, date])).rows
  } catch (error) {
    throw dbFailure(error)
  }
  return rows[0] === undefined ? undefined : { id: Number(rows[0].id), pending: Number(rows[0].pending) }
}

export async function hasCurrentRun (pool: pg.Pool, psp: string, date: string): Promise<boolean> {
  return (await currentRun(pool, psp, date)) !== undefined
}

/**
 * Reconciles `date`, then reruns D-1 and D+1 if their current run has pending_settlement rows:
 * this run may have been what they were waiting for. Follow-ups do not cascade.
 * Returns the run of `date` first, then the follow-ups.
 */
export async function reconcileWithFollowUps (deps: ReconcileDeps, request: ReconcileRequest): Promise<RunResult[]> {
  const results = [await reconcileDay(deps, request)]
  for (const neighbour of [addDays(request.date, -1), addDays(request.date, 1)].slice(0, limits.followUpRunsMax)) {
    const current = await currentRun(deps.pool, request.psp, neighbour)
    if (current === undefined || current.pending === 0) continue
    results.push(await reconcileDay(deps, { psp: request.psp, date: neighbour, trigger: 'follow_up' }))
  }
  return results
}
