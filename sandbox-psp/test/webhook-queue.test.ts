// The outbox's in-memory due queue (outbox.ts): rebuilt from the o/ entries at start, so what was
// written before a stop goes out after the next start; bounded, with the entries past the bound
// waiting on disk and read back once there is room; retries still wait for their backoff after a
// burst of failures; and the on-disk due index of earlier versions is removed at open.
// (This file replaces the regression test of the outbox stall: the w/ index scans it was about
// are gone.)

import t from 'tap'
import { startSandboxPsp } from '../psp.ts'
import { createLogger } from '../../lib/log.ts'
import { PspStore, keys, rangeEnd } from '../store.ts'
import { defaultPspLimits } from '../limits.ts'
import { charge, chargeBody, eventually, secretKey, startPsp, startReceiver, stats, tempDir, webhookSecret } from './helpers.ts'

const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 30, webhookDeliveryTimeoutMs: 500 }

t.test('entries written before a stop are delivered after the start, the stale one still after the newer one', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const dataDir = tempDir('psp-queue-restart-')
  const options = { dataDir, secretKey, webhookSecret, limits: fastRetries }
  receiver.respond = () => 503
  const first = await startSandboxPsp({ ...options, runtime: { webhookBaseUrl: url, webhookReorderRate: 1 } }, createLogger('psp-test'))
  const bodies = [chargeBody(), chargeBody('pm_card_declined'), chargeBody()]
  for (const body of bodies) t.equal((await charge(first, body)).status, 201)
  await receiver.waitFor((r) => r.length >= 3, 'failing attempts before the stop')
  t.equal((await stats(first)).webhooks.pending, 6, 'three final events and three stale ones')
  await first.stop()
  const before = receiver.received.length

  receiver.respond = () => 200
  const second = await startSandboxPsp({ ...options, runtime: { webhookBaseUrl: url } }, createLogger('psp-test'))
  t.teardown(() => second.stop())
  await eventually(async () => ((await stats(second)).webhooks.pending === 0 ? true : undefined), 'the outbox to empty after the start')
  const after = receiver.received.slice(before)
  for (const body of bodies) {
    const types = after.filter((h) => h.event.data.object.reference === body.reference).map((h) => h.event.type)
    t.equal(types.at(-1), 'charge.pending', `${body.reference}: the stale event went out last`)
    t.ok(types.length >= 2 && types.slice(0, -1).every((type) => type !== 'charge.pending'), `${body.reference}: the final event went out first (${types.join(', ')})`)
  }
  t.match((await stats(second)).webhooks, { enqueued: 6, delivered: 6, failed: 0, pending: 0 })
})

t.test('the queue holds at most webhookQueueEntriesMax; entries past it wait on disk and are all delivered', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const queueMax = 4
  const eventCount = 15
  // Nothing goes out while the receiver is down (a 50 ms backoff keeps every entry queued or on disk).
  receiver.respond = () => 503
  const psp = await startPsp(t, {
    runtime: { webhookBaseUrl: url },
    limits: { ...fastRetries, webhookRetryBaseMs: 50, webhookRetryMaxMs: 50, webhookQueueEntriesMax: queueMax, webhookDeliveriesInFlightMax: 2, webhookRefillChunkEntries: 3 },
  })
  const { dispatcher } = psp.context
  let largest = 0
  const sample = setInterval(() => { largest = Math.max(largest, dispatcher.queued + dispatcher.inFlight) }, 1)
  t.teardown(() => clearInterval(sample))
  const references: string[] = []
  for (let i = 0; i < eventCount; i++) {
    const body = chargeBody()
    references.push(body.reference)
    t.equal((await charge(psp, body)).status, 201)
    largest = Math.max(largest, dispatcher.queued + dispatcher.inFlight)
  }
  t.equal((await stats(psp)).webhooks.pending, eventCount, 'every event is in the outbox')
  receiver.respond = () => 200
  await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'every event to be delivered', 10_000)
  const delivered = new Set(receiver.received.map((h) => h.event.data.object.reference))
  t.same(references.filter((reference) => !delivered.has(reference)), [], 'none was left behind on disk')
  t.ok(largest <= queueMax, `queued + in flight stayed within the bound (largest seen ${largest})`)
  t.ok(largest >= 2, 'the queue was used')
  t.same(await psp.context.store.db.keys({ gte: keys.outboxPrefix, lt: keys.outboxPrefix + rangeEnd }).all(), [], 'the outbox is empty on disk')
})

t.test('after a burst of failing deliveries, retries wait for their backoff and later events still go out', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const deliveryTimeoutMs = 300
  const retryMs = 1_000
  // Each event's first attempt hangs (cut by the delivery timeout: a failure); later ones succeed.
  receiver.respond = (hook) => (receiver.received.filter((h) => h.event.id === hook.event.id).length === 1 ? 'hang' : 200)
  const psp = await startPsp(t, {
    runtime: { webhookBaseUrl: url },
    limits: { webhookDeliveriesInFlightMax: 2, webhookDeliveryTimeoutMs: deliveryTimeoutMs, webhookRetryBaseMs: retryMs, webhookRetryMaxMs: retryMs, webhookAttemptsMax: 4 },
  })
  const references: string[] = []
  for (let i = 0; i < 4; i++) references.push((await charge(psp, chargeBody())).body.reference as string)
  await eventually(() => (references.every((r) => receiver.forReference(r).length === 2) ? true : undefined), 'every retry', 8_000)
  for (const reference of references) {
    const [first, second] = receiver.forReference(reference)
    const gapMs = second!.receivedAtMs - first!.receivedAtMs
    t.ok(gapMs >= deliveryTimeoutMs + 0.8 * retryMs - 50, `${reference}: the retry waited for its backoff (${gapMs} ms after the first attempt)`)
  }
  receiver.respond = () => 200
  const later = (await charge(psp, chargeBody())).body.reference as string
  await receiver.waitFor(() => receiver.forReference(later).length === 1, 'a later event to be delivered', 3_000)
  await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'the outbox to empty')
})

t.test('a data dir of an earlier version: its w/ due index is removed at open, its whole-JSON entries delivered', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const dataDir = tempDir('psp-queue-legacy-')
  const store = new PspStore(dataDir, defaultPspLimits)
  await store.open()
  const dueMs = Date.now() - 60_000
  const seq = store.nextOutboxSeq()
  const body = JSON.stringify({ id: 'evt_legacy', object: 'event', type: 'charge.succeeded', created: 1, data: { object: { id: 'ch_legacy', reference: 'co-legacy' } } })
  const entry = { seq, event_id: 'evt_legacy', type: 'charge.succeeded', reference: 'co-legacy', body, attempts: 0, due_at_ms: dueMs }
  await store.write({
    ops: [
      { type: 'put', key: keys.outbox(seq), value: JSON.stringify(entry) },
      { type: 'put', key: `w/${String(dueMs).padStart(15, '0')}/${String(seq).padStart(16, '0')}`, value: '' },
      // An index key without an entry, as the outbox stall used to leave behind.
      { type: 'put', key: `w/${String(dueMs).padStart(15, '0')}/${String(900_000_000).padStart(16, '0')}`, value: '' },
    ],
    counters: { webhooksEnqueued: 1, webhooksPending: 1 },
  })
  await store.close()

  const psp = await startPsp(t, { dataDir, runtime: { webhookBaseUrl: url } })
  const [hook] = await receiver.waitFor((r) => r.length >= 1, 'the entry of the earlier version')
  t.equal(hook!.body, body, 'the same bytes')
  t.equal(hook!.path, '/webhooks/psp/sandbox/co-legacy')
  t.same(await psp.context.store.db.keys({ gte: 'w/', lt: 'w/' + rangeEnd }).all(), [], 'no w/ key is left')
  await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'the entry to be removed')
})
