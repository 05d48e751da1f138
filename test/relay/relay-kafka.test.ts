// The publishing loop against the real Kafka of the stack, with acknowledgements lost on purpose
// (the publish succeeds, the relay is told it failed) and connection failures: what the ordering
// argument in cdc-relay/relay.ts relies on — kafkajs with maxInFlightRequests 1 appending each
// partition's part of a request in order, and re-sending whole batches — holds on a real broker:
// after first-copy dedup every event is there once, each key in version order.

import { randomBytes } from 'node:crypto'
import t from 'tap'
import { EventBusError, type EventMessage, type EventProducer, type PublishOptions } from '../../lib/event-bus.ts'
import { createKafkaProducer } from '../../lib/kafka-event-bus.ts'
import { createTopics } from '../../scripts/stack/kafka.ts'
import { LevelChangeLog } from '../../cdc-relay/change-log.ts'
import { Relay } from '../../cdc-relay/relay.ts'
import { openTestNode, silentLog, testLimits, until } from '../../cdc-relay/test/fixtures.ts'
import { EventCollector, orderProblems } from '../helpers/events.ts'
import { kafkaEndpoint, loadStackInfo } from '../helpers/stack.ts'
import { testKeyRing } from '../helpers/field-keys.ts'

const stack = loadStackInfo()
const topic = 'ringpay.relay-test'
const topicPartitions = 8
const paymentCount = 40
const deadlineMs = 60_000

/** Wraps the real producer: every 3rd publish loses its ack, every 5th fails before sending. */
class FlakyProducer implements EventProducer {
  readonly #inner: EventProducer
  calls = 0
  lostAcks = 0
  constructor (inner: EventProducer) { this.#inner = inner }
  async publish (topicName: string, messages: readonly EventMessage[], options: PublishOptions): Promise<void> {
    this.calls++
    if (this.calls % 5 === 0) throw new EventBusError('connection', 'simulated connection failure', { retriable: true })
    await this.#inner.publish(topicName, messages, options)
    if (this.calls % 3 === 0) {
      this.lostAcks++
      throw new EventBusError('timeout', 'simulated lost acknowledgement', { retriable: true })
    }
  }
  close (): Promise<void> { return this.#inner.close() }
}

t.test('lost acks and failures on a real broker: every event once after dedup, per-key order kept', async (t) => {
  await createTopics(kafkaEndpoint(), [{ name: topic, partitions: topicPartitions, replicationFactor: -1 }])
  const nodeId = `rk-${randomBytes(4).toString('hex')}`
  const node = await openTestNode(nodeId)
  t.teardown(() => node.close())
  const producer = new FlakyProducer(createKafkaProducer({
    ...kafkaEndpoint(), clientId: nodeId, connectionTimeoutMs: 1_000, requestTimeoutMs: 10_000, log: silentLog,
  }))
  t.teardown(() => producer.close())
  const relay = new Relay({
    nodeId, topic, changeLog: new LevelChangeLog(node.store.db), producer, limits: testLimits({ publishBatchEventsMax: 7 }),
    log: silentLog, initialNextSequence: node.store.meta.nextSequence, report: () => {},
  })
  node.onCommitted((next) => relay.notifyCommitted(next))
  void relay.start()

  const ids = Array.from({ length: paymentCount }, (_, i) => `${nodeId}-${i}`)
  await node.createPayments(ids)
  for (const [to, expectedVersion] of [['processing', 1], ['succeeded', 2]] as const) {
    await Promise.all(ids.map((id) => node.service.transition('merchant_demo', id, { to, expectedVersion, actor: 'test', failureCode: '', failureMessage: '', pspReference: '' }, Date.now())))
  }
  const total = paymentCount * 3
  await until(() => relay.cursor === total + 1, deadlineMs, 'the relay to publish everything')
  t.equal(await relay.stop(1_000), 'stopped')

  const collector = await EventCollector.start((key) => key.startsWith(`${nodeId}-`), topic, testKeyRing)
  t.teardown(() => collector.close())
  await collector.waitFor(() => collector.events.length >= total, deadlineMs, 'every event')
  t.ok(producer.lostAcks > 0, `${producer.lostAcks} acknowledgements lost`)
  t.ok(collector.received > total, `duplicates on the topic (${collector.received} copies of ${total} events)`)
  t.equal(collector.events.length, total, 'every event once after dedup')
  const byKey = collector.byKey()
  t.equal(byKey.size, paymentCount)
  for (const [key, events] of byKey) t.same(events.map((e) => e.event.version), [1, 2, 3], `${key} in version order`)
  t.same(orderProblems(byKey), [])
})
