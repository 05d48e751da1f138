-- Refunds (issue #14), projected from the nodes' change events like payments: a refund row only
-- ever moves to a higher payment version (the node bumps the payment's version on every refund
-- change), so a late or duplicate event never moves a refund backwards. Amounts are bigint minor
-- units of the payment's currency.

CREATE TABLE refunds (
  refund_id        text PRIMARY KEY,
  checkout_id      text NOT NULL,
  merchant_id      text NOT NULL,
  amount           bigint NOT NULL CHECK (amount > 0),
  currency         char(3) NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  reason           text NOT NULL DEFAULT '',
  psp_reference    text,
  failure_code     text,
  failure_message  text,
  -- The payment's version this row was projected from; the projection only moves it forward.
  payment_version  bigint NOT NULL CHECK (payment_version >= 1),
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  projected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_checkout_idx ON refunds (checkout_id);
CREATE INDEX refunds_open_idx ON refunds (updated_at) WHERE status = 'pending';

-- Succeeded refunds of the payment, as of its version (the node's amount_refunded).
ALTER TABLE payments ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0);
