-- The operators' web console (issue #18, console/). Owned by the console (role ringpay_console,
-- db/roles.ts): its operators, their sessions, failed sign-ins and the audit of every action.
--
-- console_operators       one row per person; the password only as scrypt with a per-user salt
--                         (console/passwords.ts: `scrypt$N$r$p$<salt>$<hash>`).
-- console_sessions        a signed-in browser; the cookie's id is kept only as its SHA-256 (a read
--                         of this table signs nobody in), with the form token (CSRF) and two ends:
--                         idle and absolute.
-- console_login_failures  failed sign-ins by name and client address: over the limit in the window,
--                         the name is refused even with the right password (console/limits.ts).
-- console_audit           every action an operator took (resolve, replay, rerun): who, when, why,
--                         what came of it, and the payment it was about: (merchant_id,
--                         checkout_id), as payments are keyed since issue #17 part 5 (both null
--                         for an action on no one payment). Never updated or deleted.

CREATE TABLE console_operators (
  name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  role           text NOT NULL CHECK (role IN ('support', 'operator', 'finance')),
  password_hash  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  disabled_at    timestamptz
);

CREATE TABLE console_sessions (
  id_digest       text PRIMARY KEY,
  operator        text NOT NULL REFERENCES console_operators (name),
  csrf_token      text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE console_login_failures (
  name        text NOT NULL,
  client_ip   text NOT NULL,
  failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_failures_name_idx ON console_login_failures (name, failed_at);
CREATE INDEX console_login_failures_ip_idx ON console_login_failures (client_ip, failed_at);

CREATE TABLE console_audit (
  id           bigserial PRIMARY KEY,
  operator     text NOT NULL,
  action       text NOT NULL,
  merchant_id  text,
  checkout_id  text,
  reason       text NOT NULL,
  outcome      text NOT NULL,
  detail       jsonb NOT NULL DEFAULT '{}',
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_audit_checkout_idx ON console_audit (merchant_id, checkout_id, at) WHERE checkout_id IS NOT NULL;

-- The console's searches, keyset-paged newest first on (created_at, merchant_id, checkout_id): by
-- status, and the flagged queue. (By merchant: payments_merchant_created_id_idx; by date alone:
-- payments_created_idx.)
CREATE INDEX payments_status_created_idx ON payments (status, created_at, merchant_id, checkout_id);
CREATE INDEX payments_flagged_idx ON payments (updated_at, merchant_id, checkout_id) WHERE flagged_reason IS NOT NULL;
-- A payment's timeline: the merchant notifications made for it (a checkout id is its merchant's).
CREATE INDEX merchant_events_checkout_idx ON merchant_events (merchant_id, checkout_id);
