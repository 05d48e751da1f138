// Issue #17 part 3: only authenticated producers may write the events topic, and each service's
// principal may do only its own job (scripts/stack/kafka-credentials.ts kafkaAcls).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import kafkajs, { Kafka, logLevel } from 'kafkajs';
import pino from 'pino';
import { EventBusError } from '../../lib/event-bus.ts';
import { classifyKafkaError, createKafkaProducer, kafkaSaslConfig, type KafkaSasl } from '../../lib/kafka-event-bus.ts';
import { kafkaAcls } from '../../scripts/stack/kafka-credentials.ts';
import { waitForAcls } from '../../scripts/stack/kafka.ts';
import { kafkaEndpoint, loadStackInfo } from '../helpers/stack.ts';

// Not named exports of kafkajs' CommonJS build.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const stack = loadStackInfo();
const silentLog = pino({ level: 'silent' });
/** Each refused attempt fails fast: a SASL refusal or an ACL denial comes back in one round trip. */
const publishTimeoutMs = 10_000;
/** How long a consumer may take to be refused its group (kafkajs retries a few times first). */
const refusalDeadlineMs = 60_000;

function producerAs(sasl: KafkaSasl | undefined, clientId: string) {
  return createKafkaProducer({ brokers: stack.kafkaBrokers, sasl, clientId, connectionTimeoutMs: 3_000, requestTimeoutMs: 10_000, log: silentLog });
}

/** A message nobody would act on: the key is not a checkout id any test uses, the value not an event. */
function probeMessage() {
  return { key: `acl-probe-${randomBytes(6).toString('hex')}`, value: new Uint8Array([0]), headers: {} };
}

async function publishRefused(t: Test, sasl: KafkaSasl | undefined, clientId: string, topic: string): Promise<EventBusError> {
  const producer = producerAs(sasl, clientId);
  t.teardown(() => producer.close());
  const error = await producer.publish(topic, [probeMessage()], { timeoutMs: publishTimeoutMs }).then(() => undefined, (e: unknown) => e);
  t.ok(error instanceof EventBusError, `${clientId}: publish to ${topic} refused`);
  return error as EventBusError;
}

t.test('the stack has credentials for every service', async (t) => {
  for (const principal of ['admin', 'relay', 'processor', 'dlq'] as const) {
    t.ok(stack.kafkaCredentials[principal]?.password, `${principal} has a password`);
  }
});

t.test('an unauthenticated client cannot produce to the events topic', async (t) => {
  const error = await publishRefused(t, undefined, 'acl-anonymous', stack.topics.events);
  // The listener speaks SASL only: the broker drops a client that sends anything else first.
  t.ok(['connection', 'unauthorized', 'timeout'].includes(error.code), `refused at the connection (${error.code})`);
});

t.test('a wrong password is refused', async (t) => {
  const relay = stack.kafkaCredentials.relay!;
  const error = await publishRefused(t, { ...relay, password: `${relay.password}x` }, 'acl-wrong-password', stack.topics.events);
  t.equal(error.code, 'unauthorized');
});

t.test("the processor's credential cannot produce to the events topic", async (t) => {
  const error = await publishRefused(t, stack.kafkaCredentials.processor, 'acl-processor', stack.topics.events);
  t.equal(error.code, 'unauthorized');
});

t.test("the relay's credential cannot produce to the dead-letter topic", async (t) => {
  const error = await publishRefused(t, stack.kafkaCredentials.relay, 'acl-relay-dlq', stack.topics.dlq);
  t.equal(error.code, 'unauthorized');
});

t.test("the relay's credential can produce to the events topic", async (t) => {
  // Only as a control for the refusals above; the probe is no change event, so the processors
  // dead-letter it as poison.
  const producer = producerAs(stack.kafkaCredentials.relay, 'acl-relay');
  t.teardown(() => producer.close());
  await producer.publish(stack.topics.events, [probeMessage()], { timeoutMs: publishTimeoutMs });
  t.pass('published');
});

/** Starts a consumer of `topic` as `sasl` and resolves with the error that stops it (or rejects). */
async function consumeRefused(t: Test, sasl: KafkaSasl, groupId: string, topic: string): Promise<{ type: string | undefined, code: string, received: number }> {
  const kafka = new Kafka({ clientId: groupId, brokers: stack.kafkaBrokers, ...kafkaSaslConfig(sasl), logLevel: logLevel.NOTHING, retry: { retries: 1 } });
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, retry: { retries: 1 } });
  t.teardown(() => consumer.disconnect());
  let received = 0;
  const crashed = new Promise<unknown>((resolve) => consumer.on(consumer.events.CRASH, ({ payload }) => resolve(payload.error)));
  const failure = (async () => {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async () => { received++; } });
    return await crashed;
  })().catch((e: unknown) => e);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`not refused within ${refusalDeadlineMs} ms`)), refusalDeadlineMs); });
  try {
    const error = await Promise.race([failure, deadline]);
    // kafkajs wraps the broker's answer (KafkaJSNonRetriableError around a KafkaJSProtocolError).
    let inner = error as { type?: string, cause?: unknown, name?: string } | undefined;
    for (let depth = 0; depth < 4 && inner !== undefined && inner.type === undefined; depth++) inner = inner.cause as typeof inner;
    t.comment(`refused with ${String(error)} (${inner?.type})`);
    return { type: inner?.type, code: classifyKafkaError(error).code, received };
  } finally {
    clearTimeout(timer);
  }
}

/** The broker's authorizer logs each denial (kafka.authorizer.logger, INFO) to its server log. */
async function brokerLogged(t: Test, pattern: RegExp): Promise<void> {
  const serverLog = stack.kafka.serverLog;
  if (serverLog === null) return void t.comment('external Kafka: no server log to check');
  const deadline = performance.now() + refusalDeadlineMs;
  for (;;) {
    if (pattern.test(readFileSync(serverLog, 'utf8'))) return void t.pass(`broker logged ${pattern}`);
    if (performance.now() > deadline) return void t.fail(`broker did not log ${pattern}`);
    await sleep(100);
  }
}

t.test("the relay's credential cannot read the events topic", async (t) => {
  const groupId = `ringpay-processor-acl-${randomBytes(4).toString('hex')}`;
  const { code, received } = await consumeRefused(t, stack.kafkaCredentials.relay!, groupId, stack.topics.events);
  // The broker denies the relay any group (FindCoordinator needs DESCRIBE on it), which kafkajs
  // reports as a coordinator it cannot find: the denial itself is in the broker's log.
  t.ok(['unauthorized', 'unknown'].includes(code), `consumer stopped (${code})`);
  t.equal(received, 0, 'nothing delivered');
  await brokerLogged(t, new RegExp(`User:relay is Denied operation = DESCRIBE .* Group:LITERAL:${groupId} `));
  // And were it given a group, the topic would still be closed to it: its only grant is WRITE.
  const { brokers, sasl } = kafkaEndpoint('admin');
  const admin = new Kafka({ clientId: 'acl-admin', brokers, ...kafkaSaslConfig(sasl), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const { resources } = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY, principal: 'User:relay',
    host: '*', operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
  });
  const grants = resources.flatMap((r) => r.acls.map((a) => `${r.resourceName}:${a.operation}`));
  t.same(grants, [`${stack.topics.events}:${AclOperationTypes.WRITE}`], 'the relay may only write the events topic');
});

t.test("the DLQ tool's credential cannot read the events topic, even with a group it may use", async (t) => {
  const { type, received } = await consumeRefused(t, stack.kafkaCredentials.dlq!, `ringpay-reader-acl-${randomBytes(4).toString('hex')}`, stack.topics.events);
  t.equal(type, 'TOPIC_AUTHORIZATION_FAILED');
  t.equal(received, 0, 'nothing delivered');
});

t.test('the admin is a super user: it can describe the cluster and the ACLs', async (t) => {
  const { brokers, sasl } = kafkaEndpoint('admin');
  const admin = new Kafka({ clientId: 'acl-admin', brokers, ...kafkaSaslConfig(sasl), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const cluster = await admin.describeCluster();
  t.ok(cluster.brokers.length > 0);
});

// Issue #17 part 3, "internal hops run encrypted": clients reach the broker over TLS only.
t.test('the broker speaks TLS 1.2+ with a certificate of the stack\'s CA for its address', async (t) => {
  const caFile = stack.kafkaCredentials.relay?.caFile;
  t.ok(caFile, 'clients are given the CA to verify the broker with');
  const [host, port] = stack.kafkaBrokers[0]!.split(':') as [string, string];
  const handshake = (options: tls.ConnectionOptions) => new Promise<tls.TLSSocket>((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(port), ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
  const socket = await handshake({ ca: readFileSync(caFile!, 'utf8'), servername: undefined });
  t.teardown(() => socket.destroy());
  t.ok(socket.authorized, 'the certificate chains to the stack\'s CA and names 127.0.0.1');
  t.match(socket.getProtocol(), /^TLSv1\.[23]$/);
  t.equal(socket.getPeerCertificate().subject.CN, 'kafka');
  t.equal(socket.getCipher().name, 'TLS_CHACHA20_POLY1305_SHA256', 'ChaCha20-Poly1305: what the broker\'s C1-compiled Java does cheaply (kafka.ts)');
  await t.rejects(handshake({ ca: readFileSync(caFile!, 'utf8'), maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), 'TLS 1.1 and older are refused');
  // (The test process trusts the stack's CA by default, loadStackInfo: name the public CAs alone.)
  await t.rejects(handshake({ ca: [...tls.rootCertificates] }), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }, 'a client trusting only the public CAs does not accept it');
});

t.test('a client without TLS cannot even log in', async (t) => {
  const relay = stack.kafkaCredentials.relay!;
  const { caFile: _, ...plaintext } = relay;
  const error = await publishRefused(t, plaintext, 'acl-plaintext', stack.topics.events);
  t.ok(['connection', 'unauthorized', 'timeout'].includes(error.code), `refused at the connection (${error.code})`);
});

t.test('the stack starts services only once the broker enforces their ACLs (waitForAcls)', async (t) => {
  const acls = kafkaAcls({ events: stack.topics.events, dlq: stack.topics.dlq });
  await waitForAcls(kafkaEndpoint('admin'), acls, 10_000);
  t.pass('every ACL the stack grants is in force');
  const notGranted = { ...acls[0]!, principal: 'notifier' as const, operation: 'WRITE' as const };
  const error = await waitForAcls(kafkaEndpoint('admin'), [...acls, notGranted], 600).then(() => undefined, (e: unknown) => e);
  t.match(String(error), /1 of 10 ACLs not yet in force/, 'an ACL the broker does not hold keeps it waiting, then fails');
});
