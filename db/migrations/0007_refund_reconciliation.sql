-- Refunds in the daily reconciliation (reconciler/, issue #14), and the refund list of the reporting
-- API (issue #15, at the end). The settlement report has refund lines, matched against `refunds`.
-- Items say what they are about (line_type) and, for a refund, which refund of ours (refund_id)
-- and which PSP charge it refunds (psp_charge).

-- The table holds a million rows per run and every rerun's history: the new CHECKs are NOT VALID,
-- so this migration scans none of it (a constant default adds a column without a rewrite). They
-- hold for every row written from now on; every existing row satisfies them already (its class is
-- in the old, smaller set; its line_type is the default).
ALTER TABLE reconciliation_items ADD COLUMN line_type text NOT NULL DEFAULT 'charge';
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_line_type_check CHECK (line_type IN ('charge', 'refund')) NOT VALID;
ALTER TABLE reconciliation_items ADD COLUMN refund_id text;
ALTER TABLE reconciliation_items ADD COLUMN psp_charge text;

ALTER TABLE reconciliation_items DROP CONSTRAINT reconciliation_items_class_check;
ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_class_check CHECK (class IN ('matched', 'pending_settlement',
  'missing_at_psp', 'missing_internally', 'amount_mismatch', 'currency_mismatch', 'status_mismatch', 'duplicate_at_psp', 'date_mismatch',
  'refund_missing_at_psp', 'refund_missing_internally', 'refund_amount_mismatch', 'refund_status_mismatch', 'refund_duplicate_at_psp',
  'refund_date_mismatch')) NOT VALID;

-- A refund of ours that the PSP settled on another day is found here (like a payment, by checkout_id).
CREATE INDEX reconciliation_items_refund_cross_day_idx ON reconciliation_items (refund_id) WHERE day_offset <> 0 AND psp_line IS NOT NULL;

-- Our side of a day: refunds that reached succeeded in [D, D+1) by updated_at.
CREATE INDEX refunds_succeeded_updated_idx ON refunds (updated_at) WHERE status = 'succeeded';
-- A report line is matched to our refund by the PSP's refund id first.
CREATE INDEX refunds_psp_reference_idx ON refunds (psp_reference) WHERE psp_reference IS NOT NULL;

-- The reporting API (reporting/, issue #15) pages a merchant's refunds newest first by
-- (created_at, refund_id), like payments: one index serves every page as a range scan.
CREATE INDEX refunds_merchant_created_id_idx ON refunds (merchant_id, created_at, refund_id);
