// The pipelined consumer's fetch pacing against the stack's real Kafka: while events trickle in,
// a fetch that brought some is followed by the next no sooner than fetchPacingMs after it came back,
// so the trickle arrives in a few larger hand-overs; every event still arrives, once.

import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { ConsumedMessage } from '../../lib/event-bus.ts'
import { createKafkaConsumer, createKafkaProducer } from '../../lib/kafka-event-bus.ts'
import { createTopics } from '../../scripts/stack/kafka.ts'
import { silentLog, until } from '../../cdc-relay/test/fixtures.ts'
import { kafkaEndpoint, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const topic = 'ringpay.fetch-pacing-test'
const fetchPacingMs = 300
const messageCount = 40
const messageGapMs = 20
/** Hand-overs closer than this belong to one fetch (its partitions are handed over together). */
const sameFetchGapMs = 60
const deadlineMs = 60_000

t.test('a trickle is fetched at most once per fetchPacingMs, and every event arrives', async (t) => {
  await createTopics(kafkaEndpoint(), [{ name: topic, partitions: 8, replicationFactor: -1 }])
  const runId = randomBytes(6).toString('hex')
  const bus = { ...kafkaEndpoint(), clientId: `pacing-${runId}`, connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: silentLog }
  const producer = createKafkaProducer(bus)
  const consumer = createKafkaConsumer({
    ...bus,
    groupId: `pacing-test-${runId}`,
    sessionTimeoutMs: 30_000,
    fetchPartitionBytesMax: 1 << 20,
    fetchBytesMax: 8 << 20,
    fetchWaitMsMax: 500,
    groupJoinTimeoutMs: deadlineMs,
  })
  t.teardown(async () => {
    await consumer.close()
    await producer.close()
  })
  const handOvers: Array<{ atMs: number, keys: string[] }> = []
  const received = new Map<string, number>()
  await consumer.runPipelined({
    topics: [topic],
    fromBeginning: false,
    partitionsConsumedConcurrently: 8,
    messagesInFlightMax: 1_000,
    offsetCommitIntervalMs: 200,
    closeDrainTimeoutMs: 1_000,
    fetchPacingMs,
    onMessages: (messages: readonly ConsumedMessage[]) => {
      const mine = messages.filter((m) => m.key?.startsWith(runId))
      if (mine.length > 0) handOvers.push({ atMs: performance.now(), keys: mine.map((m) => m.key!) })
      for (const m of mine) received.set(m.key!, (received.get(m.key!) ?? 0) + 1)
      return messages.map(() => Promise.resolve())
    },
  })
  const sendStartedAt = performance.now()
  for (let i = 0; i < messageCount; i++) {
    await producer.publish(topic, [{ key: `${runId}-${i}`, value: Buffer.from(String(i)), headers: {} }], { timeoutMs: 10_000 })
    await new Promise((resolve) => setTimeout(resolve, messageGapMs))
  }
  // What the trickle really took: each publish waits for its acknowledgement, which on a busy
  // machine stretches the nominal messageCount × messageGapMs.
  const sendSpanMs = performance.now() - sendStartedAt
  await until(() => received.size === messageCount, deadlineMs, 'every event consumed')
  t.ok([...received.values()].every((n) => n === 1), 'each event handed over once')
  // Group hand-overs into fetches, then look at the gaps between fetches.
  const fetchStarts: number[] = []
  for (const h of handOvers) {
    if (fetchStarts.length === 0 || h.atMs - fetchStarts[fetchStarts.length - 1]! > sameFetchGapMs) fetchStarts.push(h.atMs)
  }
  // Paced: at most one fetch per fetchPacingMs of sending, plus the first and the tail's.
  t.ok(fetchStarts.length <= 2 + Math.ceil(sendSpanMs / fetchPacingMs),
    `${messageCount} events sent over ${Math.round(sendSpanMs)} ms arrived in ${fetchStarts.length} fetches (unpaced: one or two events each)`)
  for (let i = 1; i < fetchStarts.length; i++) {
    const gapMs = fetchStarts[i]! - fetchStarts[i - 1]!
    // The pause runs from the previous fetch's return (its hand-over); timers may fire a little early.
    t.ok(gapMs >= fetchPacingMs - 10, `fetch ${i} handed over ${Math.round(gapMs)} ms after the one before`)
  }
})
