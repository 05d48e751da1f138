-- The reporting API (reporting/) pages a merchant's payments newest first by (created_at,
-- checkout_id): one index serves every page as a range scan, whatever the filters. It replaces
-- payments_merchant_created_idx, its prefix, so the projection still maintains one index for it.
CREATE INDEX payments_merchant_created_id_idx ON payments (merchant_id, created_at, checkout_id);
DROP INDEX payments_merchant_created_idx;
