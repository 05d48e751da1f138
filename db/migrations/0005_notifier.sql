-- Outgoing merchant webhooks (issue #15, notifier/). Owned by the notifier (role
-- ringpay_notifier, db/roles.ts); nothing else writes these tables.
--
-- webhook_endpoints   a merchant's endpoints; the signing secret only sealed (lib/field-crypto.ts,
--                     context webhook_endpoints.secret/<merchant>/<endpoint id>), since it must be
--                     usable to sign; a rolled secret keeps the previous one until its expiry.
-- merchant_events     one row per payment or refund change of a merchant with endpoints; the id is
--                     derived from the change event id, so a redelivered Kafka message makes the
--                     same row (ON CONFLICT DO NOTHING). The body (it holds the payment's payment
--                     method token, customer ref and metadata) is sealed, bound to the event id.
-- webhook_deliveries  one row per (endpoint, event): pending until it succeeds or fails for good.
--                     Pending rows are the durable queue: a crash or restart resumes them.
-- webhook_attempts    every HTTP attempt of a delivery (time, latency, status, error).

CREATE TABLE webhook_endpoints (
  id                          text PRIMARY KEY,
  merchant_id                 text NOT NULL,
  url                         text NOT NULL,
  -- Event types, or '*' for all.
  events                      text[] NOT NULL,
  secret_sealed               text NOT NULL,
  previous_secret_sealed      text,
  previous_secret_expires_at  timestamptz,
  status                      text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
  disabled_reason             text,
  disabled_at                 timestamptz,
  -- Failed attempts in a row, and when the streak began (NULL after a success).
  consecutive_failures        integer NOT NULL DEFAULT 0,
  failing_since               timestamptz,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  deleted_at                  timestamptz
);
CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE merchant_events (
  id               text PRIMARY KEY,
  merchant_id      text NOT NULL,
  type             text NOT NULL,
  checkout_id      text NOT NULL,
  version          bigint NOT NULL CHECK (version >= 1),
  -- The change event this one came from (<node>:<sequence>), for operators.
  change_event_id  text NOT NULL,
  created_at       timestamptz NOT NULL,
  payload_sealed   text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now()
);
-- GET /events: a merchant's events newest first, keyset pages on (created_at, id).
CREATE INDEX merchant_events_merchant_created_idx ON merchant_events (merchant_id, created_at, id);

CREATE TABLE webhook_deliveries (
  id               bigserial PRIMARY KEY,
  endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id),
  event_id         text NOT NULL REFERENCES merchant_events (id),
  -- Copied from the event: the per (endpoint, checkout id) order is decided on these alone.
  checkout_id      text NOT NULL,
  version          bigint NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- Retries stop after this (retryWindowMs after the delivery was made or redelivered).
  give_up_at       timestamptz NOT NULL,
  -- A notifier holds the delivery while it is sending; an expired lease (a crash) frees it.
  leased_until     timestamptz,
  last_http_status integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (endpoint_id, event_id)
);
-- What is due, and whether an earlier version of the same payment is still pending on the endpoint.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, checkout_id, version) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
  id            bigserial PRIMARY KEY,
  delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id),
  endpoint_id   text NOT NULL,
  event_id      text NOT NULL,
  attempted_at  timestamptz NOT NULL,
  latency_ms    integer NOT NULL,
  -- NULL when no answer came (timeout, refused connection, refused address).
  http_status   integer,
  error         text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);
