-- Daily settlement reconciliation (reconciler/): one run per (psp, report date) and attempt, the
-- classified rows of each run, and per-currency totals. A rerun of a date inserts a new run and
-- marks the previous current one superseded, in the same transaction: history is kept, exactly
-- one run per (psp, date) is current. A run that fails stores nothing (one transaction per run).
-- Amounts are bigint minor units; sums are numeric (a day's sum may pass 2^63 minor units).

CREATE TABLE reconciliation_runs (
  id                  bigserial PRIMARY KEY,
  psp                 text NOT NULL,
  report_date         date NOT NULL,
  is_current          boolean NOT NULL,
  -- The run that replaced this one (NULL while current).
  superseded_by       bigint REFERENCES reconciliation_runs (id),
  -- What started it: schedule (the daemon), cli, admin (the daemon's POST /admin/reconcile), follow_up (a neighbour day was reconciled while
  -- this date had pending_settlement rows), test.
  trigger             text NOT NULL,
  started_at          timestamptz NOT NULL,
  finished_at         timestamptz NOT NULL,
  duration_ms         integer NOT NULL CHECK (duration_ms >= 0),
  psp_rows            bigint NOT NULL CHECK (psp_rows >= 0),
  internal_rows       bigint NOT NULL CHECK (internal_rows >= 0),
  -- Items by class, e.g. {"matched": 999998, "amount_mismatch": 2}.
  counts              jsonb NOT NULL,
  discrepancies       bigint NOT NULL CHECK (discrepancies >= 0),
  pending             bigint NOT NULL CHECK (pending >= 0),
  CHECK (NOT (is_current AND superseded_by IS NOT NULL))
);
CREATE UNIQUE INDEX reconciliation_runs_current_idx ON reconciliation_runs (psp, report_date) WHERE is_current;
CREATE INDEX reconciliation_runs_date_idx ON reconciliation_runs (psp, report_date, id);

-- One row per PSP report line, and one per payment of ours that no line of the day accounts for.
-- No foreign key to the run (items are only written in the run's own transaction, a million at a
-- time, and a per-row FK trigger would cost more than the insert); BRIN on run_id because a run's
-- items are inserted together.
CREATE TABLE reconciliation_items (
  run_id               bigint NOT NULL,
  class                text NOT NULL CHECK (class IN ('matched', 'pending_settlement', 'missing_at_psp', 'missing_internally',
                         'amount_mismatch', 'currency_mismatch', 'status_mismatch', 'duplicate_at_psp', 'date_mismatch')),
  note                 text,
  -- Line number in the PSP's CSV (header = line 1); NULL for a payment of ours with no line.
  psp_line             bigint,
  psp_reference        text,
  -- Our checkout id when the line matched a payment of ours, else the PSP's.
  checkout_id          text,
  psp_checkout_id      text,
  merchant_id          text,
  psp_amount           bigint,
  internal_amount      bigint,
  psp_currency         text,
  internal_currency    text,
  fee                  bigint,
  net                  bigint,
  psp_status           text,
  internal_status      text,
  psp_charged_at       timestamptz,
  internal_succeeded_at timestamptz,
  -- Our success day minus the PSP's settlement day, for a line matched to a succeeded payment of
  -- ours (0 = same UTC day); for a payment of ours settled on another day: that day minus ours.
  day_offset           integer
);
CREATE INDEX reconciliation_items_run_brin ON reconciliation_items USING brin (run_id);
-- Cross-day matches are few: a payment of ours that the PSP settled on another day is found here.
CREATE INDEX reconciliation_items_cross_day_idx ON reconciliation_items (checkout_id) WHERE day_offset <> 0 AND psp_line IS NOT NULL;

CREATE TABLE reconciliation_totals (
  run_id            bigint NOT NULL REFERENCES reconciliation_runs (id),
  currency          text NOT NULL,
  psp_rows          bigint NOT NULL,
  psp_amount        numeric(40, 0) NOT NULL,
  psp_fee           numeric(40, 0) NOT NULL,
  psp_net           numeric(40, 0) NOT NULL,
  internal_rows     bigint NOT NULL,
  internal_amount   numeric(40, 0) NOT NULL,
  PRIMARY KEY (run_id, currency)
);

-- Our side of a day: payments that reached succeeded in [D, D+1) by updated_at.
CREATE INDEX payments_succeeded_updated_idx ON payments (updated_at) WHERE status = 'succeeded';
