// Checkout ids are per merchant (issue #17 part 5): the same checkout id of two merchants is two
// payments on the node, each with its own record, versions, in-flight claim, long-polls and
// open-payment entry; one merchant learns nothing of the other's (a read, cancel, capture or
// refund of an id only the other used is "not found", as for an id nobody used). A data dir
// written before (payments keyed by checkout id alone) is refused with a typed error.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import t from 'tap'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { encodeNodeMeta } from '../../lib/payment-codec.ts'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { PaymentStore, StoreLayoutError } from '../store.ts'

const request = { amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }

async function openService (t: any): Promise<{ service: PaymentService, store: PaymentStore }> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-scoped-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  await store.knownIdsRebuilt()
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  t.teardown(() => store.close())
  return { service, store }
}

function codeOf (promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  const run = typeof promise === 'function' ? Promise.resolve().then(promise) : promise
  return run.then(() => undefined, (error: { code?: string }) => error.code)
}

function succeededWebhook (pspEventId: string, merchant: string): IncomingWebhook {
  return {
    provider: 'sandbox', pspEventId, type: 'charge.succeeded', payloadJson: JSON.stringify({ merchant }), target: 'succeeded',
    pspReference: `ch_${merchant}`, amount: request.amount, currency: 'EUR', failureCode: '', failureMessage: '',
  }
}

t.test('two merchants create the same checkout id: two payments, each its own', async (t) => {
  const { service, store } = await openService(t)
  const a = await service.create('m_a', 'co_shared', request, Date.now())
  const b = await service.create('m_b', 'co_shared', { ...request, amount: 2500 }, Date.now())
  t.match(a, { kind: 'created', payment: { merchantId: 'm_a', amount: 1000, version: 1 } })
  t.match(b, { kind: 'created', payment: { merchantId: 'm_b', amount: 2500, version: 1 } }, 'not a conflict: another payment')
  t.match(await service.create('m_a', 'co_shared', request, Date.now()), { kind: 'replayed', payment: { merchantId: 'm_a', amount: 1000 } })
  t.equal(await codeOf(service.create('m_b', 'co_shared', request, Date.now())), 'idempotency_key_reuse', 'each merchant\'s own idempotency')
  t.equal(store.getPayment('m_a', 'co_shared')?.amount, 1000)
  t.equal(store.getPayment('m_b', 'co_shared')?.amount, 2500)

  // Each moves on its own: versions, transitions and the other's record untouched.
  await service.transition('m_a', 'co_shared', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  t.match(await service.transition('m_a', 'co_shared', { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_a' }, Date.now()),
    { applied: true, payment: { status: 'succeeded', version: 3 } })
  t.match(service.get('m_b', 'co_shared'), { status: 'pending', version: 1 }, 'the other merchant\'s payment did not move')
  t.match(await service.cancel('m_b', 'co_shared', Date.now()), { applied: true, payment: { status: 'canceled' } })
  t.match(service.get('m_a', 'co_shared'), { status: 'succeeded', version: 3 }, 'a cancel of B\'s is not A\'s')

  // The open-payment index keeps one entry per payment.
  const open = await store.scanOpen(Date.now(), 60_000, 100)
  t.equal(open.open, 0, 'both left the open-payment index')
})

t.test('another merchant\'s id is exactly an unknown id: read, long-poll, cancel, capture, refund', async (t) => {
  const { service } = await openService(t)
  await service.create('m_a', 'co_only_a', request, Date.now())
  await service.transition('m_a', 'co_only_a', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  await service.transition('m_a', 'co_only_a', { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_a' }, Date.now())
  for (const id of ['co_only_a', 'co_nobody']) {
    t.equal(await codeOf(() => service.get('m_b', id)), 'payment_not_found', `get ${id}`)
    t.equal(await codeOf(() => service.waitForChange('m_b', id, 1, 1_000, () => {})), 'payment_not_found', `long-poll ${id}`)
    t.equal(await codeOf(service.cancel('m_b', id, Date.now())), 'payment_not_found', `cancel ${id}`)
    t.equal(await codeOf(service.capture('m_b', id, undefined, Date.now())), 'payment_not_found', `capture ${id}`)
    t.equal(await codeOf(service.createRefund('m_b', id, 'k1', { amount: 1, reason: '' }, Date.now())), 'payment_not_found', `refund ${id}`)
    t.equal(await codeOf(service.transition('m_b', id, { to: 'failed', expectedVersion: 3, actor: 'ops', ...details }, Date.now())),
      'payment_not_found', `internal transition ${id}`)
  }
  t.match(service.get('m_a', 'co_only_a'), { status: 'succeeded', version: 3, refunds: [] }, 'A\'s payment is untouched')
})

t.test('a webhook for one merchant\'s payment does not touch the other\'s of the same id', async (t) => {
  const { service } = await openService(t)
  await service.create('m_a', 'co_wh', request, Date.now())
  await service.create('m_b', 'co_wh', request, Date.now())
  t.match(await service.receiveWebhook('m_a', 'co_wh', succeededWebhook('evt_a', 'm_a'), Date.now()),
    { applied: true, payment: { merchantId: 'm_a', status: 'succeeded', pspReference: 'ch_m_a' } })
  t.match(service.get('m_b', 'co_wh'), { status: 'pending', version: 1, pspReference: '' }, 'B\'s payment is untouched')
  t.equal(await codeOf(service.receiveWebhook('m_c', 'co_wh', succeededWebhook('evt_c', 'm_c'), Date.now())), 'payment_not_found',
    'a merchant with no payment of the id: not found')
})

t.test('writes of the two payments are serialised apart, and long-polls wake for their own payment only', async (t) => {
  const { service } = await openService(t)
  await service.create('m_a', 'co_lp', request, Date.now())
  await service.create('m_b', 'co_lp', request, Date.now())
  let bWoke = false
  const pollB = service.waitForChange('m_b', 'co_lp', 1, 300, () => {}).then((p) => { bWoke = p.version > 1; return p })
  const pollA = service.waitForChange('m_a', 'co_lp', 1, 10_000, () => {})
  // Both in flight at once: one per payment, neither refused as "in use" by the other.
  const [moveA, moveB] = await Promise.all([
    service.transition('m_a', 'co_lp', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now()),
    service.cancel('m_b', 'co_lp', Date.now()),
  ])
  t.match(moveA, { applied: true, payment: { merchantId: 'm_a', status: 'processing' } })
  t.match(moveB, { applied: true, payment: { merchantId: 'm_b', status: 'canceled' } })
  t.match(await pollA, { merchantId: 'm_a', version: 2 })
  t.match(await pollB, { merchantId: 'm_b', version: 2, status: 'canceled' })
  t.ok(bWoke, 'B\'s long-poll woke for B\'s cancel')
})

t.test('a data dir from before checkout ids were per merchant is refused, with a typed error', async (t) => {
  const location = join(mkdtempSync(join(tmpdir(), 'ringpay-old-layout-')), 'db')
  const old = new ClassicLevel<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await old.open()
  // What a node wrote before: its meta, and payments keyed by checkout id alone (no m/layout).
  await old.put('m/node', encodeNodeMeta({ nodeId: 'n1', nextSequence: 1, createdAtMs: 1 }))
  await old.close()
  const store = new PaymentStore(location, { sealer: testKeyRing })
  const refused = await store.open('n1', Date.now()).then(() => undefined, (error: unknown) => error)
  t.ok(refused instanceof StoreLayoutError, 'a StoreLayoutError')
  t.match(refused, { code: 'store_layout_old', message: /Delete the data dir/ })

  // A store made now opens again.
  const fresh = join(mkdtempSync(join(tmpdir(), 'ringpay-new-layout-')), 'db')
  const first = new PaymentStore(fresh, { sealer: testKeyRing })
  await first.open('n1', Date.now())
  await first.close()
  const again = new PaymentStore(fresh, { sealer: testKeyRing })
  await again.open('n1', Date.now())
  await again.close()
  t.pass('a store made with per-merchant keys reopens')
})
