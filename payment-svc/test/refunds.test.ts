// PaymentService refunds (issue #14): only a succeeded payment; pending plus succeeded refunds
// never exceed its amount, also when many requests race; the Idempotency-Key replays or refuses;
// refund outcomes are forward only; a failed refund gives its amount back; refund webhooks apply
// or only confirm.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { decodeChangeEvent } from '../../lib/payment-codec.ts'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { changeLogKey, PaymentStore } from '../store.ts'

const request = { amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }

async function succeededPayment (t: any, checkoutId: string): Promise<{ service: PaymentService, store: PaymentStore }> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-refunds-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  t.teardown(() => store.close())
  await service.create('m', checkoutId, request, Date.now())
  await service.transition('m', checkoutId, { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  await service.transition('m', checkoutId, { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_1' }, Date.now())
  return { service, store }
}

const succeed = (pspReference: string) => ({ to: 'succeeded' as const, actor: 'processor', ...details, pspReference })

t.test('a refund is pending at the next version with a published event; the rest is the default amount', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_a')
  const sequence = store.meta.nextSequence
  const woken = service.waitForChange('m', 'co_a', 3, 10_000, () => {})
  const first = await service.createRefund('m', 'co_a', 'key-1', { amount: 300, reason: 'damaged' }, Date.now())
  t.match(first, { kind: 'created', refund: { amount: 300, status: 'pending', reason: 'damaged' }, payment: { status: 'succeeded', version: 4 } })
  t.match(first.refund.id, /^re_[A-Za-z0-9_-]{22}$/)
  t.match(await woken, { version: 4 }, 'the long-poll is woken by the refund')
  const event = decodeChangeEvent(await store.db.get(changeLogKey(sequence), { valueEncoding: 'view' }) as Uint8Array, testKeyRing)
  t.match(event, { type: 'payment.refund_created', version: 4, refundId: first.refund.id, actor: 'api', payment: { status: 'succeeded' } })
  const rest = await service.createRefund('m', 'co_a', 'key-2', { amount: undefined, reason: '' }, Date.now())
  t.equal(rest.refund.amount, 700, 'no amount: what remains')
  await t.rejects(service.createRefund('m', 'co_a', 'key-3', { amount: 1, reason: '' }, Date.now()),
    { code: 'refund_amount_exceeds_available', extra: { amount_available: 0 } })
  await t.rejects(service.createRefund('m', 'co_a', 'key-4', { amount: undefined, reason: '' }, Date.now()),
    { code: 'refund_amount_exceeds_available' }, 'nothing left: no zero refund')
})

t.test('idempotency: same key and body replays, another body is refused', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_b')
  const first = await service.createRefund('m', 'co_b', 'k', { amount: 100, reason: '' }, Date.now())
  const sequence = store.meta.nextSequence
  const again = await service.createRefund('m', 'co_b', 'k', { amount: 100, reason: '' }, Date.now())
  t.match(again, { kind: 'replayed', refund: { id: first.refund.id } })
  t.equal(store.meta.nextSequence, sequence, 'a replay writes nothing')
  await t.rejects(service.createRefund('m', 'co_b', 'k', { amount: 101, reason: '' }, Date.now()), { code: 'idempotency_key_reuse' })
  await t.rejects(service.createRefund('other', 'co_b', 'k', { amount: 100, reason: '' }, Date.now()), { code: 'payment_not_found' })
  t.equal(store.getPayment('m', 'co_b')!.refunds.length, 1)
})

t.test('only a succeeded payment is refunded', async (t) => {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-refunds-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  await service.create('m', 'co_c', request, Date.now())
  await t.rejects(service.createRefund('m', 'co_c', 'k', { amount: 1, reason: '' }, Date.now()),
    { code: 'payment_not_refundable', status: 409, extra: { current_status: 'pending', current_version: 1 } })
  t.same(store.getPayment('m', 'co_c')!.refunds, [])
})

t.test('concurrent refunds never exceed the amount', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_d')
  const results = await Promise.allSettled(Array.from({ length: 4 }, (_, i) =>
    service.createRefund('m', 'co_d', `k${i}`, { amount: 300, reason: '' }, Date.now())))
  const accepted = results.filter((r) => r.status === 'fulfilled')
  const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)
  t.equal(accepted.length, 3, '3 × 300 fit in 1000')
  t.same(refused, ['refund_amount_exceeds_available'])
  t.equal(store.getPayment('m', 'co_d')!.refunds.reduce((sum, r) => sum + r.amount, 0), 900)
})

t.test('outcomes are forward only; a failed refund gives its amount back', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_e')
  const { refund } = await service.createRefund('m', 'co_e', 'k1', { amount: 1000, reason: '' }, Date.now())
  const failed = await service.transitionRefund('m', 'co_e', refund.id, { to: 'failed', actor: 'processor', ...details, failureCode: 'expired_card' }, Date.now())
  t.match(failed, { applied: true, refund: { status: 'failed', failureCode: 'expired_card' }, payment: { version: 5, status: 'succeeded' } })
  t.match(await service.transitionRefund('m', 'co_e', refund.id, { to: 'failed', actor: 'processor', ...details }, Date.now()), { applied: false })
  await t.rejects(service.transitionRefund('m', 'co_e', refund.id, succeed('re_psp'), Date.now()), { code: 'invalid_transition' })
  await t.rejects(service.transitionRefund('m', 'co_e', 're_unknown', succeed('re_psp'), Date.now()), { code: 'refund_not_found' })
  const second = await service.createRefund('m', 'co_e', 'k2', { amount: undefined, reason: '' }, Date.now())
  t.equal(second.refund.amount, 1000, 'the failed refund\'s amount is available again')
  await service.transitionRefund('m', 'co_e', second.refund.id, succeed('re_psp2'), Date.now())
  t.match(store.getPayment('m', 'co_e')!.refunds.map((r) => r.status), ['failed', 'succeeded'])
})

t.test('refund webhooks apply once, confirm without a write, and record disagreements', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_f')
  const { refund } = await service.createRefund('m', 'co_f', 'k1', { amount: 400, reason: '' }, Date.now())
  const webhook = (id: string, type: string, target: 'succeeded' | 'failed' | undefined, amount = 400): IncomingWebhook => ({
    provider: 'sandbox', pspEventId: id, type, payloadJson: '{}', target: undefined, pspReference: 're_psp', amount, currency: 'EUR',
    failureCode: '', failureMessage: '', refund: { id: refund.id, target },
  })
  t.match(await service.receiveWebhook('m', 'co_f', webhook('evt_1', 'refund.succeeded', 'succeeded', 399), Date.now()),
    { applied: false, note: 'amount_mismatch' })
  t.match(await service.receiveWebhook('m', 'co_f', webhook('evt_2', 'refund.succeeded', 'succeeded'), Date.now()), { applied: true })
  t.match(store.getPayment('m', 'co_f')!.refunds[0], { status: 'succeeded', pspReference: 're_psp' })
  t.match(await service.receiveWebhook('m', 'co_f', webhook('evt_2', 'refund.succeeded', 'succeeded'), Date.now()), { duplicate: true })
  const sequence = store.meta.nextSequence
  t.match(await service.receiveWebhook('m', 'co_f', webhook('evt_3', 'refund.succeeded', 'succeeded'), Date.now()), { applied: false, note: 'already_applied' })
  t.equal(store.meta.nextSequence, sequence, 'a confirmation writes nothing')
  t.match(await service.receiveWebhook('m', 'co_f', webhook('evt_4', 'refund.failed', 'failed'), Date.now()), { applied: false, note: 'terminal' })
  t.equal(store.getPayment('m', 'co_f')!.refunds[0]!.status, 'succeeded', 'never backwards')
})
