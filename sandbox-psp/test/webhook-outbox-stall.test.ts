// Regression: the webhook outbox stopped delivering entirely after a burst of failing deliveries.
//
// A scan reads the w/<due>/<seq> index through a LevelDB iterator, which sees a snapshot taken when
// it was created. A delivery that failed while the scan was reading rescheduled its entry (new due
// key) and left #deliveries; the scan then acted on the old key from its snapshot: it sent the
// entry again at once (no backoff) and, once that delivery ended, deleted the old key, leaving the
// entry's current key behind for ever. Such orphan keys sort first (they are the oldest due) and
// were skipped without being removed, so once a scan's `limit` worth of them had piled up, every
// scan read nothing but orphans and no webhook went out again.

import t from 'tap'
import { rangeEnd } from '../store.ts'
import { charge, chargeBody, eventually, startPsp, startReceiver, stats } from './helpers.ts'

const deliveryTimeoutMs = 300
const retryMs = 1_000
// Two slots: one delivery in flight leaves room for a scan; two orphans fill a scan's limit.
const limits = { webhookDeliveriesInFlightMax: 2, webhookDeliveryTimeoutMs: deliveryTimeoutMs, webhookRetryBaseMs: retryMs, webhookRetryMaxMs: retryMs, webhookAttemptsMax: 4 }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a scan reading a stale index snapshot neither resends early nor orphans index keys (the outbox stall)', async (t) => {
  const { receiver, url } = await startReceiver(t)
  // Each event's first attempt hangs (cut by the delivery timeout: a failure); later ones succeed.
  receiver.respond = (hook) => (receiver.received.filter((h) => h.event.id === hook.event.id).length === 1 ? 'hang' : 200)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits })
  const { store, dispatcher } = psp.context
  const outboxIndex = (): Promise<string[]> => store.db.keys({ gte: 'w/', lt: 'w/' + rangeEnd }).all()

  // The next due-scan's read is held until `hold` resolves; its snapshot is taken before.
  let hold: (() => Promise<void>) | undefined
  const keys = store.db.keys.bind(store.db)
  store.db.keys = ((options: { lt?: string }) => {
    const iterator = keys(options)
    const gate = hold
    if (gate === undefined || options.lt === undefined || !options.lt.startsWith('w/') || options.lt === 'w/' + rangeEnd) return iterator
    hold = undefined
    const all = iterator.all.bind(iterator)
    iterator.all = async () => {
      const result = await all()
      await gate()
      return result
    }
    return iterator
  }) as typeof store.db.keys

  for (let round = 1; round <= limits.webhookDeliveriesInFlightMax; round++) {
    const reference = (await charge(psp, chargeBody())).body.reference as string
    const [first] = await eventually(() => (receiver.forReference(reference).length === 1 ? receiver.forReference(reference) : undefined), 'the first attempt')
    // A scan starts while the attempt is in flight, and reads on after it failed and was rescheduled.
    hold = async () => {
      await eventually(() => (dispatcher.inFlight === 0 ? true : undefined), 'the failed attempt to be rescheduled')
    }
    dispatcher.wake()
    const [, second] = await eventually(() => (receiver.forReference(reference).length === 2 ? receiver.forReference(reference) : undefined), 'the retry', 5_000)
    const gapMs = second!.receivedAtMs - first!.receivedAtMs
    t.ok(gapMs >= deliveryTimeoutMs + 0.8 * retryMs - 50, `round ${round}: the retry waited for its backoff (${gapMs} ms after the first attempt)`)
    await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'the outbox to empty')
  }
  t.same(await eventually(async () => {
    const left = await outboxIndex()
    return left.length === 0 ? left : undefined
  }, 'the index to empty', 2_000).catch(() => outboxIndex()), [], 'no index key outlives its entry')

  // Every retry time above has passed: an orphan key would now be due and fill the scan.
  await sleep(retryMs * 1.2)
  receiver.respond = () => 200
  const later = (await charge(psp, chargeBody())).body.reference as string
  await receiver.waitFor(() => receiver.forReference(later).length === 1, 'a later event to be delivered', 3_000)
  t.pass('later events are still delivered')
})

t.test('index keys without an entry (left by an earlier version) do not block the outbox, and are removed', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url } })
  const { store, limits: pspLimits } = psp.context
  const orphanDueMs = Date.now() - 60_000
  const ops = Array.from({ length: pspLimits.webhookDeliveriesInFlightMax + 8 }, (_, i) => ({
    type: 'put' as const,
    key: `w/${String(orphanDueMs).padStart(15, '0')}/${String(900_000_000 + i).padStart(16, '0')}`,
    value: '',
  }))
  await store.write({ ops })
  const reference = (await charge(psp, chargeBody())).body.reference as string
  await receiver.waitFor(() => receiver.forReference(reference).length === 1, 'the event behind the orphan keys', 3_000)
  await eventually(async () => ((await store.db.keys({ gte: 'w/', lt: 'w/' + rangeEnd }).all()).length === 0 ? true : undefined), 'the orphan keys to be removed')
  t.pass('delivered, and the index is clean')
})
