// Migration 0008 (checkout ids per merchant, issue #17 part 5) on rows written before it: applied to
// a scratch schema of the stack's Postgres holding 0001–0007 and a few rows, it keys payments by
// (merchant_id, checkout_id), gives every event, attempt and webhook its payment's merchant, and
// then takes a second merchant's payment of the same checkout id. The scratch schema is dropped.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { loadStackInfo } from '../helpers/stack.ts';

const migrationsDir = new URL('../../db/migrations/', import.meta.url);
const migrations = readdirSync(migrationsDir).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
const sql = (file: string): string => readFileSync(new URL(file, migrationsDir), 'utf8');

t.test('0008 migrates existing rows and then lets two merchants share a checkout id', async (t) => {
  const client = new pg.Client({ connectionString: loadStackInfo().databaseUrl });
  await client.connect();
  const schema = `mig_scoped_${randomBytes(6).toString('hex')}`;
  t.teardown(async () => {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.query(`SET search_path TO ${schema}`);
  const before = migrations.filter((f) => f < '0008');
  t.equal(before.length, 7, '0001–0007');
  for (const file of before) await client.query(sql(file));

  await client.query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at)
    VALUES ('co_old', 'm_a', 'n1', 100, 'EUR', 'succeeded', 3, 'pm', now(), now())`);
  await client.query(`INSERT INTO payment_events (event_id, checkout_id, version, type, status, actor, occurred_at)
    VALUES ('n1:1', 'co_old', 1, 'payment.created', 'pending', 'api', now()), ('n1:2', 'co_orphan', 1, 'payment.created', 'pending', 'api', now())`);
  await client.query(`INSERT INTO psp_attempts (checkout_id, provider, idempotency_key, attempt, request, outcome, latency_ms, started_at)
    VALUES ('co_old', 'sandbox', 'co_old', 1, '{}', 'succeeded', 5, now())`);
  await client.query(`INSERT INTO webhooks (provider, psp_event_id, checkout_id, type, applied, received_at, payload)
    VALUES ('sandbox', 'evt_1', 'co_old', 'charge.succeeded', true, now(), '{}')`);

  await client.query('BEGIN');
  await client.query(sql('0008_merchant_scoped_ids.sql'));
  await client.query('COMMIT');

  const merchantOf = async (table: string): Promise<string[]> =>
    (await client.query(`SELECT merchant_id FROM ${table} ORDER BY checkout_id`)).rows.map((r) => r.merchant_id);
  t.same(await merchantOf('payment_events'), ['m_a', ''], 'events: their payment\'s merchant; one without a payment row: none');
  t.same(await merchantOf('psp_attempts'), ['m_a']);
  t.same(await merchantOf('webhooks'), ['m_a']);
  const key = await client.query(`SELECT array_agg(a.attname::text ORDER BY k.i) AS columns
    FROM pg_index x JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i) ON true
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
    WHERE x.indrelid = '${schema}.payments'::regclass AND x.indisprimary`);
  t.same(key.rows[0].columns, ['merchant_id', 'checkout_id'], 'payments are keyed by merchant and checkout id');

  // Another merchant's payment of the same checkout id is a second row; the same merchant's twice is not.
  await client.query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at)
    VALUES ('co_old', 'm_b', 'n1', 200, 'EUR', 'pending', 1, 'pm', now(), now())`);
  const again = await client.query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at)
    VALUES ('co_old', 'm_a', 'n1', 100, 'EUR', 'pending', 1, 'pm', now(), now())`).then(() => 'inserted', (error: { code?: string }) => error.code);
  t.equal(again, '23505', 'one payment per merchant and checkout id');
  t.same((await client.query(`SELECT merchant_id, amount FROM payments WHERE checkout_id = 'co_old' ORDER BY merchant_id`)).rows,
    [{ merchant_id: 'm_a', amount: '100' }, { merchant_id: 'm_b', amount: '200' }]);
});
