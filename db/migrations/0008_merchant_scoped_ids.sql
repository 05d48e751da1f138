-- Checkout ids are per merchant (issue #17 part 5): a payment is its merchant's checkout id, and the
-- same checkout id of two merchants is two payments. Every table that names a payment by checkout
-- id names its merchant too, and the keys and lookups follow.
--
-- Existing rows migrate as they are: until now a checkout id was one payment whatever the
-- merchant, so each row's merchant is its payment's. A row whose payment is not (yet) in
-- `payments` (a PSP attempt or webhook recorded before its payment was projected, and never since)
-- gets '' and names no payment; nothing looks such rows up by merchant.

-- payments: keyed by (merchant_id, checkout_id).
ALTER TABLE payments DROP CONSTRAINT payments_pkey;
ALTER TABLE payments ADD PRIMARY KEY (merchant_id, checkout_id);

-- payment_events: each event's payment.
ALTER TABLE payment_events ADD COLUMN merchant_id text;
UPDATE payment_events e SET merchant_id = p.merchant_id FROM payments p WHERE p.checkout_id = e.checkout_id;
UPDATE payment_events SET merchant_id = '' WHERE merchant_id IS NULL;
ALTER TABLE payment_events ALTER COLUMN merchant_id SET NOT NULL;
DROP INDEX payment_events_checkout_idx;
CREATE INDEX payment_events_checkout_idx ON payment_events (merchant_id, checkout_id, version);

-- psp_attempts: each attempt's payment (its idempotency key is derived from both from now on).
ALTER TABLE psp_attempts ADD COLUMN merchant_id text;
UPDATE psp_attempts a SET merchant_id = p.merchant_id FROM payments p WHERE p.checkout_id = a.checkout_id;
UPDATE psp_attempts SET merchant_id = '' WHERE merchant_id IS NULL;
ALTER TABLE psp_attempts ALTER COLUMN merchant_id SET NOT NULL;
DROP INDEX psp_attempts_checkout_idx;
CREATE INDEX psp_attempts_checkout_idx ON psp_attempts (merchant_id, checkout_id);

-- webhooks: the payment each PSP event was applied to (still one row per PSP event id).
ALTER TABLE webhooks ADD COLUMN merchant_id text;
UPDATE webhooks w SET merchant_id = p.merchant_id FROM payments p WHERE p.checkout_id = w.checkout_id;
UPDATE webhooks SET merchant_id = '' WHERE merchant_id IS NULL;
ALTER TABLE webhooks ALTER COLUMN merchant_id SET NOT NULL;
DROP INDEX webhooks_checkout_idx;
CREATE INDEX webhooks_checkout_idx ON webhooks (merchant_id, checkout_id);

-- refunds already carry their merchant; a payment's refunds are found by both.
DROP INDEX refunds_checkout_idx;
CREATE INDEX refunds_checkout_idx ON refunds (merchant_id, checkout_id);

-- reconciliation_items already carry the merchant; the reconciler's cross-day lookup goes by both.
DROP INDEX reconciliation_items_cross_day_idx;
CREATE INDEX reconciliation_items_cross_day_idx ON reconciliation_items (merchant_id, checkout_id) WHERE day_offset <> 0 AND psp_line IS NOT NULL;

-- The notifier's merchant_events and webhook_deliveries already belong to one merchant each (an
-- event's merchant, an endpoint's merchant): a checkout id there is that merchant's.
