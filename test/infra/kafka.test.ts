// The stack's Kafka: topics exist with the configured partition counts; no auto-creation.
import t from 'tap';
import { Kafka, logLevel } from 'kafkajs';
import { createTopics, kafkaHealthy, stackTopics } from '../../scripts/stack/kafka.ts';
import { kafkaEndpoint, loadStackInfo } from '../helpers/stack.ts';
import { kafkaSaslConfig } from '../../lib/kafka-event-bus.ts';

const stack = loadStackInfo();
const kafkaTimeoutMs = 10_000;

t.test('kafka is healthy', async (t) => {
  t.equal(await kafkaHealthy(kafkaEndpoint()), true);
});

t.test('topics exist with the configured partition counts', async (t) => {
  const admin = new Kafka({ clientId: 'infra-test', brokers: stack.kafkaBrokers, ...kafkaSaslConfig(kafkaEndpoint().sasl), logLevel: logLevel.NOTHING, requestTimeout: kafkaTimeoutMs }).admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const meta = await admin.fetchTopicMetadata({ topics: [stack.topics.events, stack.topics.dlq] });
  const partitions = Object.fromEntries(meta.topics.map((m) => [m.name, m.partitions.length]));
  t.same(partitions, { [stack.topics.events]: stack.topics.eventsPartitions, [stack.topics.dlq]: stack.topics.dlqPartitions });
  t.equal(stack.topics.events, 'payments.events');
  t.equal(stack.topics.dlq, 'payments.dlq');

  // Auto-creation is off: asking for an unknown topic does not create it.
  const ghost = `ghost-${Date.now()}`;
  await t.rejects(admin.fetchTopicMetadata({ topics: [ghost] }));
  t.notOk((await admin.listTopics()).includes(ghost), 'unknown topic not auto-created');
});

t.test('createTopics is idempotent and refuses a partition-count change', async (t) => {
  const topics = stackTopics(stack.topics.eventsPartitions, stack.topics.dlqPartitions);
  await createTopics(kafkaEndpoint(), topics);
  await t.rejects(createTopics(kafkaEndpoint(), stackTopics(stack.topics.eventsPartitions + 1, stack.topics.dlqPartitions)), /refusing to change/);
});
