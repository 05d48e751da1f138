// PaymentService.cancel: a pending payment becomes canceled through the state machine, with a
// published change event and its long-polls woken; the processor's claim and a cancel exclude each
// other (whichever the node orders first wins); requires_action is canceled too (the processor then
// cancels its PSP charge); a claimed or final payment is refused.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodeChangeEvent } from '../../lib/payment-codec.ts'
import { defaultLimits } from '../limits.ts'
import { PaymentService } from '../payment-service.ts'
import { changeLogKey, PaymentStore } from '../store.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }
const claim = { to: 'processing' as const, expectedVersion: 1, actor: 'processor', publish: false, ...details }

async function openService (t: any): Promise<{ service: PaymentService, store: PaymentStore }> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-cancel-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  t.teardown(() => store.close())
  return { service, store }
}

t.test('a pending payment is canceled: new version, published, long-poll woken; again is a no-op', async (t) => {
  const { service, store } = await openService(t)
  await service.create('m', 'co_a', request, Date.now())
  const sequence = store.meta.nextSequence
  const woken = service.waitForChange('m', 'co_a', 1, 10_000, () => {})
  const canceled = await service.cancel('m', 'co_a', Date.now())
  t.match(canceled, { applied: true, payment: { status: 'canceled', version: 2 } })
  t.match(await woken, { status: 'canceled', version: 2 }, 'the long-poll is woken with the canceled payment')
  const event = decodeChangeEvent(await store.db.get(changeLogKey(sequence), { valueEncoding: 'view' }) as Uint8Array, testKeyRing)
  t.match(event, { type: 'payment.status_changed', version: 2, previousStatus: 'pending', actor: 'api', payment: { status: 'canceled' } })
  t.match(await service.cancel('m', 'co_a', Date.now()), { applied: false, payment: { status: 'canceled', version: 2 } })
  t.equal(store.meta.nextSequence, sequence + 1, 'the repeated cancel wrote nothing')
  await t.rejects(service.transition('m', 'co_a', claim, Date.now()), { code: 'stale_version' }, 'the processor\'s claim after it is refused')
  t.match(store.getPayment('m', 'co_a'), { status: 'canceled', version: 2 })
})

t.test('a claimed or final payment is not cancelable', async (t) => {
  const { service } = await openService(t)
  await service.create('m', 'co_b', request, Date.now())
  await service.transition('m', 'co_b', claim, Date.now())
  await t.rejects(service.cancel('m', 'co_b', Date.now()),
    { code: 'payment_not_cancelable', status: 409, extra: { current_status: 'processing', current_version: 2 } })
  await service.transition('m', 'co_b', { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_b' }, Date.now())
  await t.rejects(service.cancel('m', 'co_b', Date.now()), { code: 'payment_not_cancelable', extra: { current_status: 'succeeded', current_version: 3 } })
})

t.test('a payment awaiting the customer is canceled, its PSP reference kept for the processor', async (t) => {
  const { service, store } = await openService(t)
  await service.create('m', 'co_r', request, Date.now())
  await service.transition('m', 'co_r', claim, Date.now())
  await service.transition('m', 'co_r', { to: 'requires_action', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_r' }, Date.now())
  const sequence = store.meta.nextSequence
  t.match(await service.cancel('m', 'co_r', Date.now()), { applied: true, payment: { status: 'canceled', version: 4, pspReference: 'ch_r' } })
  const event = decodeChangeEvent(await store.db.get(changeLogKey(sequence), { valueEncoding: 'view' }) as Uint8Array, testKeyRing)
  t.match(event, { previousStatus: 'requires_action', actor: 'api', payment: { status: 'canceled', pspReference: 'ch_r' } },
    'the event the processor acts on: cancel ch_r at the PSP')
  await t.rejects(service.transition('m', 'co_r', { to: 'succeeded', expectedVersion: 4, actor: 'processor', ...details, pspReference: 'ch_r' }, Date.now()),
    { code: 'invalid_transition' }, 'nothing moves it afterwards')
})

t.test('another merchant\'s or an unknown payment is not found', async (t) => {
  const { service, store } = await openService(t)
  await service.create('m', 'co_c', request, Date.now())
  await t.rejects(service.cancel('other', 'co_c', Date.now()), { code: 'payment_not_found' })
  await t.rejects(service.cancel('m', 'co_none', Date.now()), { code: 'payment_not_found' })
  t.match(store.getPayment('m', 'co_c'), { status: 'pending', version: 1 })
})

t.test('a cancel sent while the create is being written waits for it, then wins over the claim', async (t) => {
  const { service } = await openService(t)
  const created = service.create('m', 'co_d', request, Date.now())
  const canceled = service.cancel('m', 'co_d', Date.now())
  const claimed = service.transition('m', 'co_d', claim, Date.now())
  t.match(await created, { kind: 'created' })
  t.match(await canceled, { applied: true, payment: { status: 'canceled', version: 2 } })
  await t.rejects(claimed, { code: 'stale_version', extra: { current_status: 'canceled' } })
})

t.test('claim first, then cancel: the cancel is refused', async (t) => {
  const { service } = await openService(t)
  await service.create('m', 'co_e', request, Date.now())
  const claimed = service.transition('m', 'co_e', claim, Date.now())
  const canceled = service.cancel('m', 'co_e', Date.now())
  t.match(await claimed, { applied: true, payment: { status: 'processing' } })
  await t.rejects(canceled, { code: 'payment_not_cancelable', extra: { current_status: 'processing' } })
})
