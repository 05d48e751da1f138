// The refund half of a reconciliation run: the report's refund lines (staged in recon_psp with the
// charge lines, `type = 'refund'`) against our `refunds`, set-based like the charges
// (reconcile.ts), in the run's transaction.
//
// 1. Every refund line joined to its refund of ours: the one holding its psp_reference (the PSP's
//    refund id), else the one whose id is the line's refund_reference (our refund id, which we
//    send the PSP as the refund's reference).
// 2. Duplicate lines: the same psp_reference again, or a second line about one refund of ours.
// 3. One INSERT ... SELECT of the classified lines, one of our refunds that succeeded on the date
//    and that no line accounts for (anti-join), with the same cut-off rule as payments: our
//    success on D-1 or D+1 is within the grace; a refund of ours with no line is pending until
//    both neighbour dates are reconciled, then `refund_missing_at_psp` unless another date's
//    report listed it.
//
// A refund line's amount is negative (money given back; see the sandbox's settlement.ts); ours are
// positive: they agree when psp amount = -ours. Items keep both as they are.

import type pg from 'pg'

/** Runs one statement in the run's transaction (errors already mapped). */
export type RunQuery = <R extends pg.QueryResultRow = any>(sql: string, params?: unknown[]) => Promise<pg.QueryResult<R>>

const oursColumns = `
       f.refund_id AS our_refund_id, f.checkout_id AS our_checkout_id, f.amount AS our_amount, f.currency::text AS our_currency,
       f.status AS our_status, f.psp_reference AS our_psp_reference,
       CASE WHEN f.status = 'succeeded' THEN f.updated_at END AS our_succeeded_at,
       CASE WHEN f.status = 'succeeded' THEN (f.updated_at AT TIME ZONE 'UTC')::date - $1::date END AS day_offset`

const joinSql = `
CREATE TEMP TABLE recon_refunds ON COMMIT DROP AS
SELECT s.line, s.psp_reference, s.checkout_id AS psp_checkout_id, s.charge AS psp_charge, s.refund_reference, s.merchant_id,
       s.amount, s.currency, s.fee, s.net, s.status, s.charged_at, (f.refund_id IS NOT NULL) AS by_ref, ${oursColumns}
FROM recon_psp s
LEFT JOIN refunds f ON f.psp_reference = s.psp_reference
WHERE s.type = 'refund'`

// Two refunds of ours holding one psp_reference (never supposed to happen) join one line twice:
// the line keeps the smallest refund id; the other is then a refund of ours no line settles.
const sharedReferenceSql = `
DELETE FROM recon_refunds a USING recon_refunds b
WHERE a.line = b.line AND a.our_refund_id > b.our_refund_id`

const fixUpSql = `
UPDATE recon_refunds j SET by_ref = false,
       our_refund_id = f.refund_id, our_checkout_id = f.checkout_id, our_amount = f.amount, our_currency = f.currency::text,
       our_status = f.status, our_psp_reference = f.psp_reference,
       our_succeeded_at = CASE WHEN f.status = 'succeeded' THEN f.updated_at END,
       day_offset = CASE WHEN f.status = 'succeeded' THEN (f.updated_at AT TIME ZONE 'UTC')::date - $1::date END
FROM refunds f
WHERE j.our_refund_id IS NULL AND j.refund_reference <> '' AND f.refund_id = j.refund_reference`

// - ref: the line repeats the psp_reference of an earlier line (skipped when the download saw the
//   report sorted with no equal neighbours, as for the charges).
// - refund: several lines about one refund of ours that holds no psp_reference (matched by our
//   refund id): all but the first. A line about a refund of ours that holds another psp_reference
//   needs no aggregate (see itemsSql).
const refDupsSql = `
  SELECT line FROM (SELECT line, row_number() OVER (PARTITION BY psp_reference ORDER BY line) AS n FROM recon_refunds) x
  WHERE n > 1`
const duplicatesSql = (refDupsPossible: boolean): string => `
CREATE TEMP TABLE recon_refund_duplicates ON COMMIT DROP AS
WITH ref_dups AS MATERIALIZED (${refDupsPossible ? refDupsSql : 'SELECT NULL::bigint AS line WHERE false'})
SELECT line, 'ref' AS kind FROM ref_dups
UNION ALL
SELECT line, 'refund' FROM (
  SELECT line, row_number() OVER (PARTITION BY our_refund_id ORDER BY line) AS n FROM recon_refunds j
  WHERE NOT by_ref AND our_refund_id IS NOT NULL AND our_psp_reference IS NULL
    AND NOT EXISTS (SELECT 1 FROM ref_dups d WHERE d.line = j.line)
) y
WHERE n > 1`

// Precedence (first that holds): duplicate line → refund_missing_internally → duplicate refund
// (another line settles our refund, or ours holds another psp_reference) → refund_status_mismatch
// → refund_amount_mismatch (amount or currency) → refund_date_mismatch (|day_offset| > 1) →
// matched (a note when day_offset is -1 or +1).
const itemsSql = `
WITH ins AS (
  INSERT INTO reconciliation_items (run_id, line_type, class, note, psp_line, psp_reference, checkout_id, psp_checkout_id, merchant_id,
    refund_id, psp_charge, psp_amount, internal_amount, psp_currency, internal_currency, fee, net, psp_status, internal_status,
    psp_charged_at, internal_succeeded_at, day_offset)
  SELECT $1, 'refund',
         CASE
           WHEN d.kind = 'ref' THEN 'refund_duplicate_at_psp'
           WHEN r.our_refund_id IS NULL THEN 'refund_missing_internally'
           WHEN d.kind = 'refund' THEN 'refund_duplicate_at_psp'
           WHEN r.our_psp_reference IS NOT NULL AND r.our_psp_reference <> r.psp_reference THEN 'refund_duplicate_at_psp'
           WHEN r.status <> 'succeeded' OR r.our_status <> 'succeeded' THEN 'refund_status_mismatch'
           WHEN r.currency <> r.our_currency OR -r.amount <> r.our_amount THEN 'refund_amount_mismatch'
           WHEN abs(r.day_offset) > 1 THEN 'refund_date_mismatch'
           ELSE 'matched'
         END,
         CASE
           WHEN d.kind = 'ref' THEN 'psp_reference repeats an earlier line of the report'
           WHEN r.our_refund_id IS NULL THEN NULL
           WHEN d.kind = 'refund' THEN 'another line of the report already settles this refund'
           WHEN r.our_psp_reference IS NOT NULL AND r.our_psp_reference <> r.psp_reference
             THEN 'our refund holds psp_reference ' || r.our_psp_reference
           WHEN r.status <> 'succeeded' OR r.our_status <> 'succeeded' THEN NULL
           WHEN r.currency <> r.our_currency THEN 'the PSP refunded in ' || r.currency || ', our refund is in ' || r.our_currency
           WHEN -r.amount <> r.our_amount THEN NULL
           WHEN r.day_offset = -1 THEN 'succeeded here the previous day (' || ($2::date - 1) || '): within the cut-off grace'
           WHEN r.day_offset = 1 THEN 'succeeded here the next day (' || ($2::date + 1) || '): within the cut-off grace'
           WHEN r.day_offset <> 0 THEN 'succeeded here on ' || ($2::date + r.day_offset) || ', outside the one-day cut-off grace'
         END,
         r.line, r.psp_reference, COALESCE(r.our_checkout_id, r.psp_checkout_id), r.psp_checkout_id, r.merchant_id,
         COALESCE(r.our_refund_id, NULLIF(r.refund_reference, '')), r.psp_charge,
         r.amount, r.our_amount, r.currency, r.our_currency, r.fee, r.net, r.status, r.our_status, r.charged_at,
         r.our_succeeded_at, r.day_offset
  FROM recon_refunds r LEFT JOIN recon_refund_duplicates d ON d.line = r.line
  RETURNING class
)
SELECT class, count(*)::bigint AS n FROM ins GROUP BY class`

// Refunds of ours that succeeded on the date and that no line accounts for (a duplicate line does
// not). A cross-day match is a refund line in the current run of another date.
const oursSql = `
WITH leftover AS MATERIALIZED (
  SELECT f.refund_id, f.checkout_id, f.psp_reference, f.merchant_id, f.amount, f.currency, f.status, f.updated_at
  FROM refunds f
  WHERE f.status = 'succeeded' AND f.updated_at >= $3 AND f.updated_at < $4
    -- Issue #16: refunds are made at the PSP that charged their payment: not one of another's.
    AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.checkout_id = f.checkout_id AND COALESCE(p.psp_provider, 'sandbox') <> $5)
    AND NOT EXISTS (
      SELECT 1 FROM recon_refunds c
      WHERE c.our_refund_id = f.refund_id
        AND (c.our_psp_reference IS NULL OR c.our_psp_reference = c.psp_reference)
        AND NOT EXISTS (SELECT 1 FROM recon_refund_duplicates d WHERE d.line = c.line))
),
ins AS (
  INSERT INTO reconciliation_items (run_id, line_type, class, note, psp_reference, checkout_id, merchant_id, refund_id,
    internal_amount, internal_currency, internal_status, internal_succeeded_at, day_offset)
  SELECT $1, 'refund',
         CASE WHEN x.report_date IS NULL THEN (CASE WHEN $6 THEN 'refund_missing_at_psp' ELSE 'pending_settlement' END)
              WHEN abs(x.report_date - $2::date) = 1 THEN 'matched'
              ELSE 'refund_date_mismatch' END,
         CASE WHEN x.report_date IS NULL THEN (CASE WHEN $6 THEN NULL
                ELSE 'not in this report; final once ' || ($2::date - 1) || ' and ' || ($2::date + 1) || ' are reconciled' END)
              ELSE 'settled by the PSP on ' || x.report_date || ' (line ' || x.psp_line || ' of that report, '
                   || x.class || ' there)' END,
         f.psp_reference, f.checkout_id, f.merchant_id, f.refund_id, f.amount, f.currency::text, f.status, f.updated_at,
         x.report_date - $2::date
  FROM leftover f
  LEFT JOIN LATERAL (
    SELECT r.report_date, i.psp_line, i.class
    FROM reconciliation_items i JOIN reconciliation_runs r ON r.id = i.run_id
    WHERE i.refund_id = f.refund_id AND i.day_offset <> 0 AND i.psp_line IS NOT NULL AND i.line_type = 'refund'
      AND i.class <> 'refund_duplicate_at_psp'
      AND r.is_current AND r.psp = $5 AND r.report_date <> $2::date
    ORDER BY abs(r.report_date - $2::date), r.report_date
    LIMIT 1
  ) x ON true
  RETURNING class
)
SELECT class, count(*)::bigint AS n FROM ins GROUP BY class`

export interface RefundRunParams {
  runId: number
  psp: string
  date: string
  /** Our side of the date, [from, to). */
  window: { from: Date, to: Date }
  neighboursReconciled: boolean
  /** False when the download saw the report sorted by psp_reference with no equal neighbours. */
  refDupsPossible: boolean
}

export type ClassRows = { class: string, n: string }[]

/** Joins and classifies the staged refund lines (`lines`: how many the download staged). */
export async function classifyRefundLines (q: RunQuery, p: RefundRunParams, lines: number): Promise<ClassRows> {
  const joined = await q(joinSql, [p.date])
  if ((joined.rowCount ?? 0) > lines) await q(sharedReferenceSql)
  await q('ANALYZE recon_refunds')
  await q(fixUpSql, [p.date])
  await q(duplicatesSql(p.refDupsPossible))
  return (await q<{ class: string, n: string }>(itemsSql, [p.runId, p.date])).rows
}

/** Items for our refunds of the date that no line accounts for (after classifyRefundLines). */
export async function classifyOurRefunds (q: RunQuery, p: RefundRunParams): Promise<ClassRows> {
  return (await q<{ class: string, n: string }>(oursSql, [p.runId, p.date, p.window.from, p.window.to, p.psp, p.neighboursReconciled])).rows
}
