-- PSP routing (issue #16): the PSP a payment is routed to, as its node records it (Payment field
-- psp_provider, set by the processor's claim before the first charge attempt, changed only by a
-- failover while no PSP holds a charge of the payment). NULL: not claimed yet, or projected before
-- routing (the sandbox PSP). The reconciler and reporting read it to know whose settlement report a
-- payment belongs in; psp_attempts already names the provider of every attempt.

ALTER TABLE payments ADD COLUMN psp_provider text
  CHECK (psp_provider ~ '^[a-z][a-z0-9_-]{0,31}$');
