// The CDC relay on the shared stack: payments through nginx come out of Kafka once each (after
// dedup by event id), keyed by checkout id, with the agreed headers, each key's events in version
// order; the relay catches up with what the nodes committed.

import t from 'tap'
import { createPayment, transition } from '../helpers/api.ts'
import { EventCollector, letterPrefix, nodeMetric, orderProblems } from '../helpers/events.ts'
import { loadStackInfo } from '../helpers/stack.ts'
import { changeEventSchemaVersion } from '../../lib/payment-codec.ts'

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
  const prefix = letterPrefix('relay')
  const ids = Array.from({ length: paymentCount }, (_, i) => `${prefix}-${i}`)
  const idSet = new Set(ids)
  const collector = await EventCollector.start((key) => idSet.has(key))
  t.teardown(() => collector.close())

  await inParallel(ids, requestConcurrency, async (id) => {
    const res = await createPayment(stack.publicUrl, apiKey, id)
    if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  })
  // The stack's processors drive every new payment too. Where our move from pending to processing
  // wins, it is version 2 and the key's second event; where a processor's claim wins (written
  // unpublished), ours is refused as stale, or answered as a no-op if the claim is still at
  // `processing`, and the key's second event is the outcome.
  const moved = ids.slice(0, transitionedCount)
  const ours = new Set<string>()
  for (const id of moved) {
    const res = await transition(stack.internalUrl, id, { to: 'processing', expected_version: 1, actor: 'relay-test' })
    t.ok(res.status === 200 || (res.status === 409 && res.body.code === 'stale_version'), `transition ${id}: ${res.status}`)
    // A claim already at `processing` makes ours a no-op (200, applied: false: the status it asks
    // for is there), not a stale version: only an applied move is ours and published.
    if (res.status === 200 && res.body.applied === true) ours.add(id)
  }

  const created = (): number => collector.events.filter((e) => e.event.type === 'payment.created').length
  const hasSecondEvent = (id: string): boolean => (collector.byKey().get(id)?.length ?? 0) >= 2
  await collector.waitFor(() => created() >= paymentCount && moved.every(hasSecondEvent), eventsDeadlineMs, 'all events')

  const byKey = collector.byKey()
  t.equal(byKey.size, paymentCount, 'every payment has events')
  t.equal(created(), paymentCount, 'exactly N payment.created after dedup')
  let wrong = 0
  for (const id of ids) {
    if ((byKey.get(id) ?? []).filter((e) => e.event.type === 'payment.created').length !== 1) wrong++
  }
  t.equal(wrong, 0, 'one payment.created per payment')
  for (const id of moved) {
    const [first, second] = byKey.get(id)!
    t.match({ type: first!.event.type, version: first!.event.version }, { type: 'payment.created', version: 1 }, `${id}: created first`)
    if (ours.has(id)) {
      t.match({ type: second!.event.type, version: second!.event.version, previous: second!.event.previousStatus, status: second!.event.payment.status, actor: second!.event.actor },
        { type: 'payment.status_changed', version: 2, previous: 'pending', status: 'processing', actor: 'ops:relay-test' }, `${id}: then our pending → processing`)
    } else {
      t.match({ type: second!.event.type, previous: second!.event.previousStatus, actor: second!.event.actor },
        // The outcome comes from the processor or, when it wins the race, the PSP's webhook.
        { type: 'payment.status_changed', previous: 'processing', actor: /^(processor|webhook:sandbox)$/ }, `${id}: then the outcome (the processor's claim is not published)`)
      t.ok(second!.event.version >= 3, `${id}: the outcome's version counts the unpublished claim`)
    }
  }
  t.same(orderProblems(byKey), [], 'per-key order')

  // Message shape: key = checkout id, headers, and a value that is the ChangeEvent itself.
  const nodeIds = new Set(stack.nodes.map((n) => n.id))
  let malformed = 0
  for (const e of collector.events) {
    const ok = e.key === e.event.checkoutId &&
      e.headers['event-id'] === `${e.event.nodeId}:${e.event.sequence}` &&
      e.headers['event-id'] === e.event.eventId &&
      e.headers['event-type'] === e.event.type &&
      e.headers['schema-version'] === String(changeEventSchemaVersion) &&
      e.headers['node-id'] === e.event.nodeId &&
      nodeIds.has(e.event.nodeId) &&
      e.event.payment.checkoutId === e.key
    if (!ok) {
      malformed++
      t.fail(`malformed message ${e.partition}/${e.offset}: ${JSON.stringify({ key: e.key, headers: e.headers })}`)
    }
  }
  t.equal(malformed, 0, `${collector.events.length} messages: key, headers and value agree`)
  t.comment(`${collector.received} copies received for ${collector.events.length} events`)
})

t.test('each relay catches up with everything its node committed, and deletes it', async (t) => {
  const prefix = letterPrefix('relay-cu')
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
