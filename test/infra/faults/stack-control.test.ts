// The control API's fault operations really happen and really recover (runs in the serial
// fault phase: it takes a node, Kafka and Postgres down, and brings each back).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { kafkaHealthy } from '../../../scripts/stack/kafka.ts';
import { control, kafkaEndpoint, loadStackInfo } from '../../helpers/stack.ts';
import { kafkaSaslConfig } from '../../../lib/kafka-event-bus.ts';
import { get, nodeAddr, publicUpstreamOf } from '../helpers.ts';

const stack = loadStackInfo();
const keysPerNodeWanted = 3;
const keySearchMax = 200;
const pgConnectTimeoutMs = 3_000;

t.test('a killed node: only its keys get 503 node_unavailable; restart brings them back', async (t) => {
  const victim = stack.nodes[0];
  if (!victim) throw new Error('stack has no nodes');
  const victimAddr = nodeAddr(victim);
  const victimKeys: string[] = [];
  const otherKeys: string[] = [];
  for (let i = 0; i < keySearchMax && (victimKeys.length < keysPerNodeWanted || otherKeys.length < keysPerNodeWanted); i++) {
    const k = `fault-${randomBytes(6).toString('hex')}`;
    ((await publicUpstreamOf(k)) === victimAddr ? victimKeys : otherKeys).push(k);
  }
  t.ok(victimKeys.length >= keysPerNodeWanted && otherKeys.length >= keysPerNodeWanted, `found keys on ${victim.id} and elsewhere`);

  await control(`/nodes/${victim.id}/kill`);
  t.teardown(() => control(`/nodes/${victim.id}/start`).then(() => {}));
  for (const k of victimKeys) {
    const res = await get(`${stack.publicUrl}/payments/${k}`);
    t.equal(res.status, 503, `${k} on the dead node: 503`);
    t.match(res.type, /^application\/problem\+json/);
    t.equal(JSON.parse(res.body).code, 'node_unavailable');
  }
  for (const k of otherKeys) {
    const res = await get(`${stack.publicUrl}/payments/${k}`);
    t.not(res.status, 503, `${k} on a live node still answered (${res.status})`);
  }

  await control(`/nodes/${victim.id}/start`);
  for (const k of victimKeys) {
    const res = await get(`${stack.publicUrl}/payments/${k}`);
    t.not(res.status, 503, `${k} back after restart (${res.status})`);
    t.equal(await publicUpstreamOf(k), victimAddr, `${k} still routed to ${victim.id}`);
  }
});

t.test('kafka stop/start on the same data dir keeps the topics', async (t) => {
  t.teardown(() => control('/kafka/start').then(() => {}));
  await control('/kafka/stop');
  await t.rejects(kafkaHealthy(kafkaEndpoint()), 'kafka is down');
  await control('/kafka/start');
  t.equal(await kafkaHealthy(kafkaEndpoint()), true, 'kafka is back');
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({ clientId: 'fault-test', brokers: stack.kafkaBrokers, ...kafkaSaslConfig(kafkaEndpoint().sasl), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const meta = await admin.fetchTopicMetadata({ topics: [stack.topics.events, stack.topics.dlq] });
  t.same(
    meta.topics.map((m) => [m.name, m.partitions.length]).sort(),
    [[stack.topics.dlq, stack.topics.dlqPartitions], [stack.topics.events, stack.topics.eventsPartitions]],
  );
});

t.test('postgres stop/start keeps committed data', async (t) => {
  const table = `infra_fault_${randomBytes(4).toString('hex')}`;
  const connect = async () => {
    const c = new pg.Client({ connectionString: stack.databaseUrl, connectionTimeoutMillis: pgConnectTimeoutMs });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const before = await connect();
  await before.query(`CREATE TABLE ${table} (v int)`);
  await before.query(`INSERT INTO ${table} VALUES (42)`);
  await before.end();

  t.teardown(() => control('/postgres/start').then(() => {}));
  await control('/postgres/stop');
  // stop waits for the postmaster to exit: nothing listens any more.
  await t.rejects(connect(), 'postgres refuses connections');
  await control('/postgres/start');
  const after = await connect();
  t.teardown(() => after.end());
  const rows = await after.query<{ v: number }>(`SELECT v FROM ${table}`);
  t.same(rows.rows, [{ v: 42 }]);
  await after.query(`DROP TABLE ${table}`);
});
