-- The queryable record of every payment, built by processors from the nodes' change events.
-- Amounts are bigint minor units; currencies ISO 4217 codes.

CREATE TABLE payments (
  checkout_id      text PRIMARY KEY,
  merchant_id      text NOT NULL,
  node_id          text NOT NULL,
  amount           bigint NOT NULL CHECK (amount > 0),
  currency         char(3) NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled')),
  -- The node's version of the payment; the projection only ever moves it forward.
  version          bigint NOT NULL CHECK (version >= 1),
  payment_method   text NOT NULL,
  psp_reference    text,
  failure_code     text,
  failure_message  text,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  projected_at     timestamptz NOT NULL DEFAULT now(),
  -- Set when something disagrees (amount or currency differs at the PSP, an unknown PSP status):
  -- the payment needs a person, and never counts as succeeded by accident.
  flagged_reason   text
);

CREATE INDEX payments_merchant_created_idx ON payments (merchant_id, created_at);
CREATE INDEX payments_created_idx ON payments (created_at);
CREATE INDEX payments_open_idx ON payments (updated_at)
  WHERE status NOT IN ('succeeded', 'failed', 'canceled');
CREATE INDEX payments_psp_reference_idx ON payments (psp_reference) WHERE psp_reference IS NOT NULL;

-- Every change event applied, once (event id = <node>:<sequence>): the dedup key of the projection
-- and the payment's history.
CREATE TABLE payment_events (
  event_id     text PRIMARY KEY,
  checkout_id  text NOT NULL,
  version      bigint NOT NULL,
  type         text NOT NULL,
  status       text NOT NULL,
  actor        text NOT NULL,
  occurred_at  timestamptz NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_events_checkout_idx ON payment_events (checkout_id, version);

-- Every call to a PSP: what was asked, what came back, how long it took.
CREATE TABLE psp_attempts (
  id               bigserial PRIMARY KEY,
  checkout_id      text NOT NULL,
  provider         text NOT NULL,
  idempotency_key  text NOT NULL,
  attempt          int NOT NULL,
  request          jsonb NOT NULL,
  http_status      int,
  response         jsonb,
  outcome          text NOT NULL,
  error_code       text,
  latency_ms       int NOT NULL,
  started_at       timestamptz NOT NULL
);
CREATE INDEX psp_attempts_checkout_idx ON psp_attempts (checkout_id);
CREATE INDEX psp_attempts_started_idx ON psp_attempts (started_at);

-- Every PSP webhook a node accepted (signature valid), recorded from the node's change events.
CREATE TABLE webhooks (
  provider      text NOT NULL,
  psp_event_id  text NOT NULL,
  checkout_id   text NOT NULL,
  type          text NOT NULL,
  applied       boolean NOT NULL,
  received_at   timestamptz NOT NULL,
  payload       jsonb NOT NULL,
  PRIMARY KEY (provider, psp_event_id)
);
CREATE INDEX webhooks_checkout_idx ON webhooks (checkout_id);
