// The stack's Postgres authenticates every connection with SCRAM and each service runs as a
// least-privilege role of its own (#17, part 3; db/roles.ts, scripts/stack/postgres.ts).
// Before: initdb --auth=trust, and every service connected as the superuser without a password.
import t, { type Test } from 'tap';
import pg from 'pg';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { control, loadStackInfo } from '../helpers/stack.ts';
import { serviceRoles } from '../../db/roles.ts';

const stack = loadStackInfo();
const connectTimeoutMs = 5_000;
const insufficientPrivilege = '42501';
const invalidPassword = '28P01';

interface Conn { client: pg.Client }

function userOf(url: string): string {
  return decodeURIComponent(new URL(url).username);
}

/** A config from a URL with the password replaced (undefined: none at all), no pgpass/PGPASSWORD. */
function configFor(url: string, password: string | undefined, overrides: Partial<pg.ClientConfig> = {}): pg.ClientConfig {
  const u = new URL(url);
  const caFile = u.searchParams.get('sslrootcert');
  const overUnixSocket = overrides.host?.startsWith('/') === true;
  return {
    host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), user: decodeURIComponent(u.username),
    // Over TCP, TLS like the URL asks (the server takes nothing else); none on the unix socket.
    ssl: caFile === null || overUnixSocket ? false : { ca: readFileSync(caFile, 'utf8') },
    // pg falls back to ~/.pgpass when no password is given: a function answering undefined
    // keeps it from finding one there (and PGPASSWORD is not read for an explicit config).
    password: () => password as string,
    connectionTimeoutMillis: connectTimeoutMs,
    ...overrides,
  };
}

async function open(config: pg.ClientConfig | string): Promise<Conn> {
  const client = new pg.Client(typeof config === 'string' ? { connectionString: config, connectionTimeoutMillis: connectTimeoutMs } : config);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    // A refusal on the client's side (no password to answer SCRAM with) leaves the socket open
    // until the server's authentication_timeout (60 s): close it.
    await client.end().catch(() => {});
    throw err;
  }
  return { client };
}

async function as(url: string, t: Test): Promise<pg.Client> {
  const { client } = await open(url);
  t.teardown(() => client.end());
  return client;
}

t.test('stack info: an admin URL and one URL per service role, each with a password', async (t) => {
  t.equal(stack.postgres.external, false, 'these tests need the stack\'s own Postgres');
  t.equal(userOf(stack.databaseUrl), 'postgres');
  t.equal(userOf(stack.databaseUrls.processor), serviceRoles.processor.role);
  t.equal(userOf(stack.databaseUrls.reconciler), serviceRoles.reconciler.role);
  t.equal(userOf(stack.databaseUrls.reporting), serviceRoles.reporting.role);
  t.equal(userOf(stack.databaseUrls.notifier), serviceRoles.notifier.role);
  t.equal(userOf(stack.databaseUrls.console), serviceRoles.console.role);
  t.equal(userOf(stack.databaseUrls.readonly), serviceRoles.readonly.role);
  const passwords = [stack.databaseUrl, ...Object.values(stack.databaseUrls)].map((u) => new URL(u).password);
  for (const p of passwords) t.ok(p.length >= 40, 'a long random password');
  t.equal(new Set(passwords).size, passwords.length, 'every role its own password');
  const pwFile = join(stack.dir, 'postgres', 'superuser-password');
  t.equal(statSync(pwFile).mode & 0o777, 0o600, 'superuser password file is 0600');
  t.equal(readFileSync(pwFile, 'utf8').trim(), decodeURIComponent(new URL(stack.databaseUrl).password));
});

t.test('connecting without a password or with a wrong one fails, over TCP and the unix socket', async (t) => {
  for (const url of [stack.databaseUrl, stack.databaseUrls.processor, stack.databaseUrls.readonly]) {
    const user = userOf(url);
    await t.rejects(open(configFor(url, undefined)), `${user} over TCP without a password`);
    const wrong = open(configFor(url, 'not-the-password'));
    await t.rejects(wrong, { code: invalidPassword }, `${user} over TCP with a wrong password: refused by the server`);
    // The socket lives in the data dir; `local` lines are SCRAM too (initdb --auth sets both).
    await t.rejects(open(configFor(url, 'not-the-password', { host: stack.postgres.dataDir! })), { code: invalidPassword },
      `${user} over the unix socket with a wrong password`);
  }
  // Another user's password does not open a role.
  const processorPassword = decodeURIComponent(new URL(stack.databaseUrls.processor).password);
  await t.rejects(open(configFor(stack.databaseUrl, processorPassword)), { code: invalidPassword }, 'the superuser with the processor\'s password');
});

t.test('TCP only over TLS (issue #17 part 3): the right password without TLS is refused; the server certificate verifies', async (t) => {
  const caFile = new URL(stack.databaseUrl).searchParams.get('sslrootcert');
  t.ok(caFile, 'every URL asks for TLS with the stack\'s CA');
  t.equal(new URL(stack.databaseUrl).searchParams.get('sslmode'), 'verify-full');
  for (const url of [stack.databaseUrl, ...Object.values(stack.databaseUrls)]) t.match(url, /sslmode=verify-full/, `${userOf(url)}: TLS`);
  const password = decodeURIComponent(new URL(stack.databaseUrl).password);
  // 28000 invalid_authorization_specification: no pg_hba line takes a TCP connection without TLS.
  await t.rejects(open(configFor(stack.databaseUrl, password, { ssl: false })), { code: '28000' }, 'the superuser\'s own password, no TLS: refused');
  const admin = await as(stack.databaseUrl, t);
  const conn = await admin.query<{ ssl: boolean, version: string }>('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  t.same(conn.rows.map((r) => r.ssl), [true], 'this connection is TLS');
  t.match(conn.rows[0]?.version, /^TLSv1\.[23]$/);
  await t.rejects(open(configFor(stack.databaseUrl, password, { ssl: { ca: [] } })), 'a client not trusting the stack\'s CA does not connect');
});

t.test('the server is configured for SCRAM only', async (t) => {
  const admin = await as(stack.databaseUrl, t);
  t.equal((await admin.query('SHOW password_encryption')).rows[0].password_encryption, 'scram-sha-256');
  const hba = await admin.query<{ type: string, auth_method: string }>('SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL');
  t.ok(hba.rows.length > 0);
  t.same([...new Set(hba.rows.map((r) => r.auth_method))], ['scram-sha-256'], 'every pg_hba line: scram-sha-256 (no trust, no md5)');
  const verifiers = await admin.query<{ rolname: string, rolpassword: string }>(
    "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = 'postgres' OR rolname LIKE 'ringpay\\_%'");
  t.equal(verifiers.rows.length, 7, 'postgres and the six service roles');
  for (const r of verifiers.rows) t.match(r.rolpassword, /^SCRAM-SHA-256\$4096:/, `${r.rolname} has a SCRAM verifier`);
});

t.test('no service role is a superuser, may create roles or databases, or owns a table', async (t) => {
  const admin = await as(stack.databaseUrl, t);
  const roles = await admin.query<{ rolname: string, rolsuper: boolean, rolcreaterole: boolean, rolcreatedb: boolean, rolreplication: boolean, rolbypassrls: boolean }>(
    "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname LIKE 'ringpay\\_%' ORDER BY rolname");
  t.same(roles.rows.map((r) => r.rolname), Object.values(serviceRoles).map((r) => r.role).sort());
  for (const r of roles.rows) {
    t.same({ ...r, rolname: undefined }, { rolname: undefined, rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolreplication: false, rolbypassrls: false }, r.rolname);
  }
  const owners = await admin.query<{ owner: string }>("SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'public'");
  t.same(owners.rows, [{ owner: 'postgres' }], 'the admin role owns every table');
  const seqOwners = await admin.query<{ owner: string }>("SELECT DISTINCT sequenceowner AS owner FROM pg_sequences WHERE schemaname = 'public'");
  t.same(seqOwners.rows, [{ owner: 'postgres' }], 'and every sequence');
});

/** `sql` run as `client` inside a rolled-back transaction: its error code, or 'ok'. */
async function attempt(client: pg.Client, sql: string): Promise<string> {
  await client.query('BEGIN');
  try {
    await client.query(sql);
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? 'error';
  } finally {
    await client.query('ROLLBACK');
  }
}

const row = `('co_roles_test', 'm', 'n1', 100, 'EUR', 'pending', 1, 'pm_card_visa', now(), now())`;
const paymentColumns = '(checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at)';

t.test('the processor\'s role: what its code runs, and nothing more', async (t) => {
  const c = await as(stack.databaseUrls.processor, t);
  // What processor/*.ts runs (projection, attempt log, watchdog) works.
  t.equal(await attempt(c, 'SELECT count(*) FROM payments'), 'ok');
  t.equal(await attempt(c, `INSERT INTO payments ${paymentColumns} VALUES ${row} ON CONFLICT (merchant_id, checkout_id) DO UPDATE SET version = excluded.version WHERE payments.version < excluded.version`), 'ok');
  t.equal(await attempt(c, "UPDATE payments SET flagged_reason = 'x' WHERE merchant_id = 'm' AND checkout_id = 'co_roles_test'"), 'ok');
  t.equal(await attempt(c, "INSERT INTO payment_events (event_id, merchant_id, checkout_id, version, type, status, actor, occurred_at) VALUES ('e', 'm', 'c', 1, 't', 's', 'a', now()) ON CONFLICT (event_id) DO NOTHING"), 'ok');
  t.equal(await attempt(c, "INSERT INTO psp_attempts (merchant_id, checkout_id, provider, idempotency_key, attempt, request, outcome, latency_ms, started_at) VALUES ('m', 'c', 'p', 'k', 1, '{}', 'ok', 1, now())"), 'ok');
  t.equal(await attempt(c, "INSERT INTO webhooks (provider, psp_event_id, merchant_id, checkout_id, type, applied, received_at, payload) VALUES ('p', 'e', 'm', 'c', 't', true, now(), '{}') ON CONFLICT DO NOTHING"), 'ok');
  // No DDL, no DELETE, no TRUNCATE, nothing of the reconciliation, no roles.
  const refused: [string, string][] = [
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
    ['CREATE TEMP TABLE', 'CREATE TEMP TABLE roles_test_evil (v int)'],
    ['DROP TABLE', 'DROP TABLE payments'],
    ['TRUNCATE', 'TRUNCATE payments'],
    ['ALTER TABLE', 'ALTER TABLE payments ADD COLUMN evil int'],
    ['ALTER TABLE (disable trigger)', 'ALTER TABLE payments DISABLE TRIGGER ALL'],
    ['CREATE INDEX', 'CREATE INDEX roles_test_evil ON payments (amount)'],
    ['DELETE payments', 'DELETE FROM payments'],
    ['DELETE payment_events', 'DELETE FROM payment_events'],
    ['UPDATE payment_events', "UPDATE payment_events SET status = 'x'"],
    ['SELECT psp_attempts', 'SELECT * FROM psp_attempts'],
    ['SELECT reconciliation_runs', 'SELECT * FROM reconciliation_runs'],
    ['SELECT reconciliation_items', 'SELECT * FROM reconciliation_items'],
    ['INSERT reconciliation_totals', "INSERT INTO reconciliation_totals VALUES (1, 'EUR', 0, 0, 0, 0, 0, 0)"],
    ['CREATE ROLE', 'CREATE ROLE roles_test_evil LOGIN SUPERUSER'],
    ['GRANT', 'GRANT ringpay_processor TO ringpay_readonly'],
    ['CREATE SCHEMA', 'CREATE SCHEMA roles_test_evil'],
    ['CREATE FUNCTION', 'CREATE FUNCTION public.roles_test_evil() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$'],
    ['read a server file', "SELECT pg_read_file('postgresql.conf')"],
    ['COPY TO PROGRAM', "COPY payments TO PROGRAM 'true'"],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `processor: ${what} refused`);
  await t.rejects(c.query('CREATE DATABASE roles_test_evil'), { code: insufficientPrivilege }, 'processor: CREATE DATABASE refused');
});

t.test('the reconciler\'s role: reads payments and refunds, writes only its own tables', async (t) => {
  const c = await as(stack.databaseUrls.reconciler, t);
  t.equal(await attempt(c, 'SELECT count(*) FROM payments'), 'ok');
  t.equal(await attempt(c, 'SELECT count(*) FROM refunds'), 'ok');
  t.equal(await attempt(c, 'CREATE TEMP TABLE recon_roles_test (v int) ON COMMIT DROP'), 'ok', 'its staging tables are TEMP');
  t.equal(await attempt(c, "SELECT nextval('reconciliation_runs_id_seq')"), 'ok');
  t.equal(await attempt(c, 'SELECT count(*) FROM reconciliation_items'), 'ok');
  t.equal(await attempt(c, 'UPDATE reconciliation_runs SET is_current = is_current WHERE false'), 'ok');
  const refused: [string, string][] = [
    ['INSERT payments', `INSERT INTO payments ${paymentColumns} VALUES ${row}`],
    ['UPDATE payments', "UPDATE payments SET status = 'succeeded'"],
    ['UPDATE refunds', "UPDATE refunds SET status = 'succeeded'"],
    ['DELETE reconciliation_runs', 'DELETE FROM reconciliation_runs'],
    ['DELETE reconciliation_items', 'DELETE FROM reconciliation_items'],
    ['TRUNCATE reconciliation_items', 'TRUNCATE reconciliation_items'],
    ['SELECT psp_attempts', 'SELECT * FROM psp_attempts'],
    ['SELECT webhooks', 'SELECT * FROM webhooks'],
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
    ['DROP TABLE', 'DROP TABLE reconciliation_runs'],
    ['CREATE ROLE', 'CREATE ROLE roles_test_evil'],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `reconciler: ${what} refused`);
});

t.test('the reporting role: reads payments and refunds, nothing else', async (t) => {
  const c = await as(stack.databaseUrls.reporting, t);
  t.equal(await attempt(c, 'SELECT count(*) FROM payments'), 'ok');
  t.equal(await attempt(c, 'SELECT count(*) FROM refunds'), 'ok');
  const refused: [string, string][] = [
    ['INSERT payments', `INSERT INTO payments ${paymentColumns} VALUES ${row}`],
    ['UPDATE payments', "UPDATE payments SET status = 'failed'"],
    ['DELETE payments', 'DELETE FROM payments'],
    ['UPDATE refunds', "UPDATE refunds SET status = 'failed'"],
    ['SELECT payment_events', 'SELECT * FROM payment_events'],
    ['SELECT psp_attempts', 'SELECT * FROM psp_attempts'],
    ['SELECT webhooks', 'SELECT * FROM webhooks'],
    ['SELECT reconciliation_items', 'SELECT * FROM reconciliation_items'],
    ['CREATE TEMP TABLE', 'CREATE TEMP TABLE roles_test_evil (v int)'],
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `reporting: ${what} refused`);
});

t.test('the notifier role: its own tables, no DELETE, nothing of payments', async (t) => {
  const c = await as(stack.databaseUrls.notifier, t);
  for (const table of ['webhook_endpoints', 'merchant_events', 'webhook_deliveries', 'webhook_attempts']) {
    t.equal(await attempt(c, `SELECT count(*) FROM ${table}`), 'ok', `reads ${table}`);
  }
  const refused: [string, string][] = [
    ['SELECT payments', 'SELECT count(*) FROM payments'],
    ['SELECT payment_events', 'SELECT * FROM payment_events'],
    ['SELECT refunds', 'SELECT * FROM refunds'],
    ['DELETE webhook_endpoints', 'DELETE FROM webhook_endpoints'],
    ['DELETE webhook_deliveries', 'DELETE FROM webhook_deliveries'],
    ['UPDATE merchant_events', "UPDATE merchant_events SET type = 'x'"],
    ['UPDATE webhook_attempts', 'UPDATE webhook_attempts SET error = NULL'],
    ['TRUNCATE webhook_attempts', 'TRUNCATE webhook_attempts'],
    ['CREATE TEMP TABLE', 'CREATE TEMP TABLE roles_test_evil (v int)'],
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `notifier: ${what} refused`);
});

t.test('the console role: reads payments, clears a flag and nothing else of them, its own tables', async (t) => {
  const c = await as(stack.databaseUrls.console, t);
  for (const table of ['payments', 'payment_events', 'psp_attempts', 'webhooks', 'refunds', 'reconciliation_runs', 'reconciliation_items',
    'merchant_events', 'webhook_deliveries', 'webhook_attempts', 'console_operators', 'console_sessions', 'console_login_failures', 'console_audit']) {
    t.equal(await attempt(c, `SELECT count(*) FROM ${table}`), 'ok', `reads ${table}`);
  }
  t.equal(await attempt(c, "UPDATE payments SET flagged_reason = NULL WHERE checkout_id = 'co_roles_test_console'"), 'ok', 'clears a flag');
  const refused: [string, string][] = [
    ['UPDATE payments.status', "UPDATE payments SET status = 'failed' WHERE checkout_id = 'co_roles_test_console'"],
    ['INSERT payments', `INSERT INTO payments ${paymentColumns} VALUES ${row}`],
    ['DELETE payments', 'DELETE FROM payments'],
    ['SELECT webhook_endpoints (sealed secrets)', 'SELECT count(*) FROM webhook_endpoints'],
    ['UPDATE console_audit', "UPDATE console_audit SET reason = 'x'"],
    ['DELETE console_audit', 'DELETE FROM console_audit'],
    ['INSERT reconciliation_runs', "INSERT INTO reconciliation_runs (psp) VALUES ('x')"],
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `console: ${what} refused`);
});

t.test('the read-only role reads and writes nothing', async (t) => {
  const c = await as(stack.databaseUrls.readonly, t);
  for (const table of ['payments', 'payment_events', 'psp_attempts', 'webhooks', 'reconciliation_runs', 'reconciliation_items', 'reconciliation_totals',
    'webhook_endpoints', 'merchant_events', 'webhook_deliveries', 'webhook_attempts']) {
    t.equal(await attempt(c, `SELECT count(*) FROM ${table}`), 'ok', `reads ${table}`);
  }
  const refused: [string, string][] = [
    ['INSERT payments', `INSERT INTO payments ${paymentColumns} VALUES ${row}`],
    ['UPDATE payments', "UPDATE payments SET status = 'failed'"],
    ['DELETE payments', 'DELETE FROM payments'],
    ['INSERT reconciliation_runs', "INSERT INTO reconciliation_runs (psp) VALUES ('x')"],
    ['CREATE TEMP TABLE', 'CREATE TEMP TABLE roles_test_evil (v int)'],
    ['CREATE TABLE', 'CREATE TABLE roles_test_evil (v int)'],
  ];
  for (const [what, sql] of refused) t.equal(await attempt(c, sql), insufficientPrivilege, `readonly: ${what} refused`);
});

t.test('the running processors, the reconciler, the reporting service and the notifier connect as their own roles', async (t) => {
  const { services } = await control<{ services: { name: string, pid: number | null }[] }>('/services', 'GET');
  const expect = new Map<string, string>([
    ...stack.processors.map((p) => [p.id, serviceRoles.processor.role] as [string, string]),
    ['reconciler', serviceRoles.reconciler.role],
    ['reporting', serviceRoles.reporting.role],
    ['notifier', serviceRoles.notifier.role],
    ['console', serviceRoles.console.role],
  ]);
  for (const [name, role] of expect) {
    const pid = services.find((s) => s.name === name)?.pid;
    t.ok(pid, `${name} runs`);
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const url = environ.find((e) => e.startsWith('DATABASE_URL='))?.slice('DATABASE_URL='.length);
    t.equal(url && userOf(url), role, `${name}: DATABASE_URL names ${role}`);
  }
});

t.test('no password is in any log of the stack', async (t) => {
  const secrets = [stack.databaseUrl, ...Object.values(stack.databaseUrls)].map((u) => decodeURIComponent(new URL(u).password));
  const logsDir = join(stack.dir, 'logs');
  const files = readdirSync(logsDir).filter((f) => statSync(join(logsDir, f)).isFile());
  t.ok(files.some((f) => f === 'postgres.log'), 'postgres.log is among them');
  for (const f of files) {
    const text = readFileSync(join(logsDir, f), 'utf8');
    t.notOk(secrets.some((s) => text.includes(s)), `${f} holds no database password`);
  }
});
