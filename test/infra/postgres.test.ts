// The stack's Postgres: reachable at databaseUrl, database `ringpay`, fsync on.
import t from 'tap';
import pg from 'pg';
import { loadStackInfo } from '../helpers/stack.ts';

const connectTimeoutMs = 5_000;

t.test('postgres answers at databaseUrl', async (t) => {
  const client = new pg.Client({ connectionString: loadStackInfo().databaseUrl, connectionTimeoutMillis: connectTimeoutMs });
  await client.connect();
  t.teardown(() => client.end());
  const db = await client.query<{ db: string }>('SELECT current_database() AS db');
  t.equal(db.rows[0]?.db, 'ringpay');
  const fsync = await client.query<{ fsync: string }>('SHOW fsync');
  t.equal(fsync.rows[0]?.fsync, 'on');
  const sync = await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  t.equal(sync.rows[0]?.synchronous_commit, 'on');
});
