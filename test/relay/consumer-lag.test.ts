// Consumer lag (issue #18) against the stack's real Kafka: the pipelined consumer reports, per
// handed-over batch, how many messages of the partition lay past it (high watermark - next offset),
// down to 0 once it has caught up; a group join resets what was reported.

import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { ConsumedMessage } from '../../lib/event-bus.ts'
import { createKafkaConsumer, createKafkaProducer } from '../../lib/kafka-event-bus.ts'
import { createTopics } from '../../scripts/stack/kafka.ts'
import { silentLog, until } from '../../cdc-relay/test/fixtures.ts'
import { kafkaEndpoint } from '../helpers/stack.ts'

const messageCount = 30
const deadlineMs = 60_000

t.test('the lag of a partition read from its start falls to 0, each value the messages past the batch', async (t) => {
  const runId = randomBytes(6).toString('hex')
  // A topic of this run's own: nothing else writes to it, so the expected lag is exact.
  const topic = `ringpay.consumer-lag-test-${runId}`
  await createTopics(kafkaEndpoint(), [{ name: topic, partitions: 1, replicationFactor: -1 }])
  const bus = { ...kafkaEndpoint(), clientId: `lag-${runId}`, connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: silentLog }
  const producer = createKafkaProducer(bus)
  // One produce request per message: one record batch each, so small fetches take a few at a time.
  for (let i = 0; i < messageCount; i++) {
    await producer.publish(topic, [{ key: `k${i}`, value: Buffer.from('x'.repeat(100)), headers: {} }], { timeoutMs: 10_000 })
  }
  const consumer = createKafkaConsumer({
    ...bus,
    groupId: `lag-test-${runId}`,
    sessionTimeoutMs: 30_000,
    // Smaller than a few record batches: the backlog arrives over several fetches.
    fetchPartitionBytesMax: 512,
    fetchBytesMax: 512,
    fetchWaitMsMax: 100,
    groupJoinTimeoutMs: deadlineMs,
  })
  t.teardown(async () => {
    await consumer.close()
    await producer.close()
  })
  const reported: Array<{ partition: number, messages: number, lastOffset: number }> = []
  let lastOffset = -1
  let resets = 0
  let received = 0
  await consumer.runPipelined({
    topics: [topic],
    fromBeginning: true,
    partitionsConsumedConcurrently: 1,
    messagesInFlightMax: 1_000,
    offsetCommitIntervalMs: 200,
    closeDrainTimeoutMs: 1_000,
    fetchPacingMs: 0,
    onMessages: (messages: readonly ConsumedMessage[]) => {
      received += messages.length
      lastOffset = Number(messages[messages.length - 1]!.offset)
      return messages.map(() => Promise.resolve())
    },
    lag: {
      set: (lagTopic, partition, messages) => { if (lagTopic === topic) reported.push({ partition, messages, lastOffset }) },
      reset: () => { resets++ },
    },
  })
  await until(() => received >= messageCount && reported.at(-1)?.messages === 0, deadlineMs, 'caught up, lag 0')
  t.ok(resets >= 1, 'the group join reset the gauge')
  t.ok(reported.length >= 2, `${reported.length} batches reported (the backlog came over several fetches)`)
  t.ok(reported[0]!.messages > 0, `the first batch left ${reported[0]!.messages} behind`)
  for (const r of reported) {
    t.equal(r.partition, 0)
    t.equal(r.messages, messageCount - (r.lastOffset + 1), `after offset ${r.lastOffset}: ${r.messages} past it`)
  }
})
