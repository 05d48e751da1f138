// One least-privilege login role per service (#17, part 3). The admin role (the cluster's
// superuser, which runs the migrations) owns every table; the services log in as these roles,
// none a superuser, none owning a table, each granted only the statements its code runs:
//   - ringpay_processor  (processor/projection.ts, attempt-log.ts, watchdog.ts): the payment
//     record and its history, no DELETE, nothing of the reconciliation.
//   - ringpay_reconciler (reconciler/reconcile.ts, report-files.ts): reads payments and refunds, writes its
//     reconciliation_* tables; TEMP for its staging tables (recon_psp, recon_joined, …).
//   - ringpay_reporting  (reporting/): SELECT on payments and refunds, the merchant-facing lists and exports.
//   - ringpay_notifier   (notifier/): its own tables (endpoints, events, deliveries, attempts);
//     nothing of payments (it reads change events from Kafka), no DELETE (an endpoint is deleted
//     by a timestamp, its history kept).
//   - ringpay_console    (console/): reads payments, their history, reconciliation and the
//     notifier's deliveries; clears a resolved payment's flag (UPDATE of flagged_reason only); its
//     own console_* tables (operators, sessions, failed sign-ins, the audit: INSERT only).
//   - ringpay_readonly   (tests, ops, checks): SELECT on the schema's tables, nothing else (of the
//     console's, only its audit: password hashes and sessions are the console's alone).
// A migration that adds a table adds its grants here; `applyServiceRoles` runs after the
// migrations on every stack start, so the grants always name tables that exist.
//
// Passwords never travel as plaintext SQL: the role's SCRAM verifier is computed here and sent
// instead (`PASSWORD 'SCRAM-SHA-256$…'`), so neither the server's log (a failed statement is
// logged whole) nor pg_stat_activity can show a password.

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import pg from 'pg'

export type ServiceRoleName = 'processor' | 'reconciler' | 'reporting' | 'notifier' | 'console' | 'readonly'

export interface ServiceRole {
  /** The Postgres role name. */
  role: string
  /** Database-level privileges beyond CONNECT. */
  database: readonly ('TEMP')[]
  /** Table -> privileges. */
  tables: Readonly<Record<string, readonly string[]>>
  /** Sequence -> privileges (a bigserial's nextval needs USAGE). */
  sequences: Readonly<Record<string, readonly string[]>>
}

const coreTables = ['payments', 'payment_events', 'psp_attempts', 'webhooks', 'refunds'] as const
const reconciliationTables = ['reconciliation_runs', 'reconciliation_items', 'reconciliation_totals'] as const
const notifierTables = ['webhook_endpoints', 'merchant_events', 'webhook_deliveries', 'webhook_attempts'] as const

export const serviceRoles: Readonly<Record<ServiceRoleName, ServiceRole>> = {
  processor: {
    role: 'ringpay_processor',
    database: [],
    tables: {
      // projection.ts: INSERT … ON CONFLICT (merchant_id, checkout_id) DO UPDATE … WHERE version < excluded
      // (reads the row), flag(): UPDATE; watchdog.ts: SELECT.
      payments: ['SELECT', 'INSERT', 'UPDATE'],
      // INSERT … ON CONFLICT DO NOTHING (the conflict target's columns need SELECT).
      payment_events: ['SELECT', 'INSERT'],
      webhooks: ['SELECT', 'INSERT'],
      // projection.ts: INSERT … ON CONFLICT (refund_id) DO UPDATE … WHERE payment_version < excluded.
      refunds: ['SELECT', 'INSERT', 'UPDATE'],
      // attempt-log.ts: INSERT only.
      psp_attempts: ['INSERT'],
    },
    sequences: { psp_attempts_id_seq: ['USAGE'] },
  },
  reconciler: {
    role: 'ringpay_reconciler',
    database: ['TEMP'],
    tables: {
      payments: ['SELECT'],
      // Refund lines of the report are matched against our refunds.
      refunds: ['SELECT'],
      // A rerun marks the previous run superseded (UPDATE); nothing is ever deleted.
      reconciliation_runs: ['SELECT', 'INSERT', 'UPDATE'],
      reconciliation_items: ['SELECT', 'INSERT'],
      reconciliation_totals: ['SELECT', 'INSERT'],
    },
    sequences: { reconciliation_runs_id_seq: ['USAGE'] },
  },
  reporting: {
    role: 'ringpay_reporting',
    database: [],
    tables: { payments: ['SELECT'], refunds: ['SELECT'] },
    sequences: {},
  },
  notifier: {
    role: 'ringpay_notifier',
    database: [],
    tables: {
      // notifier/store.ts: create, list, soft-delete (UPDATE deleted_at), roll, disable.
      webhook_endpoints: ['SELECT', 'INSERT', 'UPDATE'],
      // INSERT … ON CONFLICT (id) DO NOTHING; the events list.
      merchant_events: ['SELECT', 'INSERT'],
      // The durable queue: claimed (leased) and settled by UPDATE; redeliver upserts.
      webhook_deliveries: ['SELECT', 'INSERT', 'UPDATE'],
      // One row per attempt, never changed.
      webhook_attempts: ['SELECT', 'INSERT'],
    },
    sequences: { webhook_deliveries_id_seq: ['USAGE'], webhook_attempts_id_seq: ['USAGE'] },
  },
  console: {
    role: 'ringpay_console',
    database: [],
    tables: {
      // A resolved flag is cleared (console/flagged.ts): that column only, nothing else of the row.
      payments: ['SELECT', 'UPDATE (flagged_reason)'],
      payment_events: ['SELECT'],
      psp_attempts: ['SELECT'],
      webhooks: ['SELECT'],
      refunds: ['SELECT'],
      ...Object.fromEntries(reconciliationTables.map((t) => [t, ['SELECT']])),
      // A payment's notifications (no endpoint secret: webhook_endpoints is not granted).
      merchant_events: ['SELECT'],
      webhook_deliveries: ['SELECT'],
      webhook_attempts: ['SELECT'],
      // console/cli.ts creates operators; a password change or disabling is an UPDATE.
      console_operators: ['SELECT', 'INSERT', 'UPDATE'],
      console_sessions: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
      // A successful sign-in forgets the name's failures.
      console_login_failures: ['SELECT', 'INSERT', 'DELETE'],
      console_audit: ['SELECT', 'INSERT'],
    },
    sequences: { console_audit_id_seq: ['USAGE'] },
  },
  readonly: {
    role: 'ringpay_readonly',
    database: [],
    tables: Object.fromEntries([...coreTables, ...reconciliationTables, ...notifierTables, 'console_audit', 'schema_migrations'].map((t) => [t, ['SELECT']])),
    sequences: {},
  },
}

export const serviceRoleNames = Object.keys(serviceRoles) as ServiceRoleName[]

/** SCRAM-SHA-256 iteration count: Postgres' default (scram_iterations = 4096). */
export const scramIterations = 4096
const scramSaltBytes = 16

/** A fresh service password: 32 random bytes, base64url (ASCII, so SASLprep leaves it as is). */
export function newDatabasePassword (): string {
  return randomBytes(32).toString('base64url')
}

/** The verifier Postgres stores for `password` (RFC 5802/7677), in its `rolpassword` format. */
export function scramVerifier (password: string, salt: Buffer = randomBytes(scramSaltBytes), iterations = scramIterations): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

/** `url` with its user and password replaced (the password is percent-encoded by URL). */
export function urlWithCredentials (url: string, user: string, password: string): string {
  const u = new URL(url)
  u.username = user
  u.password = password
  return u.toString()
}

/** `url` with the password replaced by `***`, for logs and the runner's banner. */
export function redactDatabaseUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '<unparseable database url>'
  }
}

function ident (name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain identifier: ${name}`)
  return name
}

/**
 * Creates (or updates) the service roles with the given passwords and grants each exactly its
 * privileges on `databaseName`, over a connection as the admin role. Idempotent; every role
 * is forced NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS. PUBLIC loses
 * CONNECT and TEMP on the database (a role not listed here cannot even connect) and CREATE on
 * schema public (Postgres 15 already drops it; older servers do not).
 */
export async function applyServiceRoles (adminUrl: string, databaseName: string, passwords: Readonly<Record<ServiceRoleName, string>>): Promise<void> {
  const db = ident(databaseName)
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    await client.query('BEGIN')
    // Two stack starts on one cluster must not race on CREATE ROLE.
    await client.query('SELECT pg_advisory_xact_lock($1)', [0x524f4c45]) // "ROLE"
    await client.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`)
    await client.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
    for (const name of serviceRoleNames) {
      const spec = serviceRoles[name]
      const role = ident(spec.role)
      const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 1
      const verifier = scramVerifier(passwords[name])
      // A verifier is not a secret worth hiding from the server, but it is still not logged by us.
      await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD '${verifier}'`)
      // Start from nothing, so a privilege dropped from the spec is revoked on the next start.
      await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`)
      await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${role}`)
      await client.query(`REVOKE ALL ON DATABASE ${db} FROM ${role}`)
      await client.query(`GRANT ${['CONNECT', ...spec.database].join(', ')} ON DATABASE ${db} TO ${role}`)
      await client.query(`GRANT USAGE ON SCHEMA public TO ${role}`)
      for (const [table, privileges] of Object.entries(spec.tables)) {
        await client.query(`GRANT ${privileges.join(', ')} ON TABLE ${ident(table)} TO ${role}`)
      }
      for (const [sequence, privileges] of Object.entries(spec.sequences)) {
        await client.query(`GRANT ${privileges.join(', ')} ON SEQUENCE ${ident(sequence)} TO ${role}`)
      }
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw new Error('granting the service roles failed', { cause: error })
  } finally {
    await client.end()
  }
}
