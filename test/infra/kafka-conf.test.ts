// The broker's config and the stack's Kafka principals (issue #17 part 3), as text and data: no
// listener without SASL, an authorizer that denies by default, least-privilege ACLs, and the
// users file checked at load. Needs no stack; the real broker is tested in kafka-auth.test.ts.
import t from 'tap';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEventKeysFile } from '../../scripts/stack/event-keys.ts';
import { renderServerProperties } from '../../scripts/stack/kafka.ts';
import { ensureKafkaUsersFile, kafkaAcls, kafkaPrincipals, newKafkaUsers, readKafkaUsersFile } from '../../scripts/stack/kafka-credentials.ts';

const topics = { events: 'payments.events', dlq: 'payments.dlq' };

t.test('the broker listens only with SASL (over TLS for clients), and denies what no ACL allows', async (t) => {
  const users = newKafkaUsers();
  const tls = { keyAndChainFile: '/tmp/x/tls/kafka.pem', caFile: '/tmp/x/tls/ca.pem' };
  const text = renderServerProperties({ dataDir: '/tmp/x', brokerPort: 19092, controllerPort: 19093, defaultPartitions: 8, users, tls });
  const props = new Map(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  t.equal(props.get('listener.security.protocol.map'), 'CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_SSL', 'no PLAINTEXT listener; clients over TLS');
  t.equal(props.get('ssl.enabled.protocols'), 'TLSv1.3,TLSv1.2', 'TLS 1.2 or later');
  t.equal(props.get('ssl.cipher.suites'), 'TLS_CHACHA20_POLY1305_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256', 'AEAD suites only, none needing AES intrinsics C1 lacks');
  t.equal(props.get('ssl.keystore.type'), 'PEM');
  t.equal(props.get('ssl.keystore.location'), tls.keyAndChainFile);
  t.match(props.get('listeners'), /^CLIENT:\/\/127\.0\.0\.1:19092,CONTROLLER:\/\/127\.0\.0\.1:19093$/, 'loopback only');
  t.equal(props.get('listener.name.client.sasl.enabled.mechanisms'), 'SCRAM-SHA-512');
  t.equal(props.get('authorizer.class.name'), 'org.apache.kafka.metadata.authorizer.StandardAuthorizer');
  t.equal(props.get('allow.everyone.if.no.acl.found'), 'false');
  t.equal(props.get('super.users'), 'User:admin;User:controller', 'no service and no ANONYMOUS is a super user');
  t.notOk(text.includes(users.passwords.relay) || text.includes(users.passwords.processor) || text.includes(users.passwords.dlq),
    'only the broker\'s own logins are in its config');
});

t.test('each principal gets only its job', async (t) => {
  const acls = kafkaAcls(topics);
  const of = (principal: string) => acls.filter((a) => a.principal === principal).map((a) => `${a.operation} ${a.resource} ${a.name}${a.pattern === 'PREFIXED' ? '*' : ''}`).sort();
  t.same(of('relay'), ['WRITE TOPIC payments.events']);
  t.same(of('processor'), ['READ GROUP ringpay-processor*', 'READ TOPIC payments.events', 'WRITE TOPIC payments.dlq']);
  t.same(of('dlq'), ['READ GROUP ringpay-reader-*', 'READ TOPIC payments.dlq', 'WRITE TOPIC payments.events']);
  t.same(of('notifier'), ['READ GROUP ringpay-notifier*', 'READ TOPIC payments.events'], 'the notifier only reads the events');
  t.same(of('admin'), [], 'the admin needs no ACL: it is a super user');
});

t.test('the users file: made once, 0600, checked at load', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kafka-users-'));
  const path = join(dir, 'kafka-users.json');
  const made = ensureKafkaUsersFile(path, null);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.same(Object.keys(made.passwords).sort(), [...kafkaPrincipals].sort());
  t.same(ensureKafkaUsersFile(path, null), made, 'kept across starts (the broker stores them at format time)');
  t.not(made.passwords.relay, made.passwords.processor, 'one password per principal');
  writeFileSync(path, JSON.stringify({ ...made, passwords: { ...made.passwords, relay: 'short' } }));
  t.throws(() => readKafkaUsersFile(path), { code: 'kafka_users_file_invalid' });
  writeFileSync(path, '{');
  t.throws(() => readKafkaUsersFile(path), { code: 'kafka_users_file_invalid' });
});

t.test('the event keys file: one key per node, kept, a key added for a new node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'event-keys-'));
  const path = join(dir, 'event-keys.json');
  const first = ensureEventKeysFile(path, ['n1', 'n2'], null);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.same([...first.keys()], ['n1', 'n2']);
  const again = ensureEventKeysFile(path, ['n1', 'n2', 'n3'], null);
  t.same(again.get('n1'), first.get('n1'), 'existing keys kept');
  t.ok(again.get('n3'), 'a new node gets a key');
  t.not(again.get('n3')!.key, again.get('n1')!.key);
});
