-- Manual capture (issue #14): a payment created with capture_method manual is only authorized by
-- the PSP (status requires_capture) until the merchant captures it, possibly in part; it then
-- succeeds with amount_captured, which bounds its refunds and is what the PSP settles (the
-- reconciler compares it with the settlement report's line). Amounts are bigint minor units.

ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
  CHECK (status IN ('pending', 'processing', 'requires_action', 'requires_capture', 'succeeded', 'failed', 'canceled'));

ALTER TABLE payments ADD COLUMN capture_method text NOT NULL DEFAULT 'automatic'
  CHECK (capture_method IN ('automatic', 'manual'));
-- A manual payment's captured amount, as of its version (0 until captured; never more than
-- authorized). NULL for an automatic payment: a succeeded one took its whole amount.
ALTER TABLE payments ADD COLUMN amount_captured bigint
  CHECK (amount_captured >= 0 AND amount_captured <= amount AND (amount_captured IS NULL) = (capture_method = 'automatic'));
-- A manual payment's capture request (minor units) once made: a requires_capture payment with one
-- is being captured (the watchdog re-drives it if stuck), one without awaits the merchant (the
-- watchdog leaves it alone until its window is over). NULL for an automatic payment.
ALTER TABLE payments ADD COLUMN amount_to_capture bigint
  CHECK (amount_to_capture >= 0 AND amount_to_capture <= amount AND (amount_to_capture IS NULL) = (capture_method = 'automatic'));
