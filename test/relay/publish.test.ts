// The CDC relay on the shared stack: payments through nginx come out of Kafka once each (after
// dedup by event id), keyed by checkout id, with the agreed headers, each key's events in version
// order; the relay catches up with what the nodes committed.

import t from 'tap'
import { createPayment, newCheckoutId, transition } from '../helpers/api.ts'
import { EventCollector, nodeMetric, orderProblems } from '../helpers/events.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const apiKey = stack.apiKeys.merchant_demo
const paymentCount = 300
const transitionedCount = 30
const requestConcurrency = 20
const eventsDeadlineMs = 60_000

async function inParallel<T> (items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
}

t.test('N payments through nginx → exactly N payment.created events; transitions follow in order', async (t) => {
  const prefix = newCheckoutId('relay')
  const ids = Array.from({ length: paymentCount }, (_, i) => `${prefix}-${i}`)
  const idSet = new Set(ids)
  const collector = await EventCollector.start((key) => idSet.has(key))
  t.teardown(() => collector.close())

  await inParallel(ids, requestConcurrency, async (id) => {
    const res = await createPayment(stack.publicUrl, apiKey, id)
    if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  })
  const moved = ids.slice(0, transitionedCount)
  for (const id of moved) {
    const res = await transition(stack.internalUrl, id, { to: 'processing', expected_version: 1, actor: 'processor' })
    t.equal(res.status, 200, `transition ${id}`)
  }

  const created = (): number => collector.events.filter((e) => e.event.type === 'payment.created').length
  const changed = (): number => collector.events.filter((e) => e.event.type === 'payment.status_changed').length
  await collector.waitFor(() => created() >= paymentCount && changed() >= transitionedCount, eventsDeadlineMs, 'all events')

  const byKey = collector.byKey()
  t.equal(byKey.size, paymentCount, 'every payment has events')
  t.equal(created(), paymentCount, 'exactly N payment.created after dedup')
  for (const id of ids) {
    const events = byKey.get(id) ?? []
    t.equal(events.filter((e) => e.event.type === 'payment.created').length, 1, `${id}: one created event`)
  }
  for (const id of moved) {
    const events = byKey.get(id)!
    t.same(events.map((e) => [e.event.type, e.event.version]), [['payment.created', 1], ['payment.status_changed', 2]], `${id}: created then status_changed`)
    t.equal(events[1]!.event.previousStatus, 'pending')
    t.equal(events[1]!.event.payment.status, 'processing')
    t.equal(events[1]!.event.actor, 'processor')
  }
  t.same(orderProblems(byKey), [], 'per-key order')

  // Message shape: key = checkout id, headers, and a value that is the ChangeEvent itself.
  const nodeIds = new Set(stack.nodes.map((n) => n.id))
  for (const e of collector.events) {
    t.equal(e.key, e.event.checkoutId)
    t.equal(e.headers['event-id'], `${e.event.nodeId}:${e.event.sequence}`)
    t.equal(e.headers['event-id'], e.event.eventId)
    t.equal(e.headers['event-type'], e.event.type)
    t.equal(e.headers['schema-version'], '1')
    t.equal(e.headers['node-id'], e.event.nodeId)
    t.ok(nodeIds.has(e.event.nodeId), 'from a node of the stack')
    t.equal(e.event.payment.checkoutId, e.key)
  }
  t.comment(`${collector.received} copies received for ${collector.events.length} events`)
})

t.test('each relay catches up with everything its node committed, and deletes it', async (t) => {
  const prefix = newCheckoutId('relay-cu')
  await inParallel(Array.from({ length: 60 }, (_, i) => `${prefix}-${i}`), 10, async (id) => {
    const res = await createPayment(stack.publicUrl, apiKey, id)
    if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  })
  for (const node of stack.nodes) {
    const committed = await nodeMetric(node.adminPort, 'ringpay_relay_committed_sequence')
    const until = Date.now() + eventsDeadlineMs
    let cursor = await nodeMetric(node.adminPort, 'ringpay_relay_cursor_sequence')
    while (cursor < committed && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      cursor = await nodeMetric(node.adminPort, 'ringpay_relay_cursor_sequence')
    }
    t.ok(cursor >= committed, `${node.id}: cursor ${cursor} passed what was committed (${committed})`)
    t.equal(await nodeMetric(node.adminPort, 'ringpay_relay_backlog_full'), 0, `${node.id}: not shedding`)
    t.equal(await nodeMetric(node.adminPort, 'ringpay_relay_kafka_healthy'), 1, `${node.id}: Kafka healthy`)
    t.ok(await nodeMetric(node.adminPort, 'ringpay_relay_published_events_total') > 0, `${node.id}: published`)
  }
})
