// Manual capture on the node (issue #14): PaymentService.capture records the capture asked for with
// a published `payment.capture_requested` event and wakes long-polls; a repeat is answered as it
// is; capture and cancel exclude each other; the processor's (or the PSP webhook's) move to
// succeeded sets amount_captured and is refused without a capture asked for, or for another
// amount; only a manual payment reaches requires_capture; refunds are bounded by the capture.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decodeChangeEvent } from '../../lib/payment-codec.ts'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { changeLogKey, PaymentStore } from '../store.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { hashCreateRequest } from '../create-request.ts'

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {}, captureMethod: 'manual' as const }
const details = { failureCode: '', failureMessage: '', pspReference: '' }

async function openService (t: any): Promise<{ service: PaymentService, store: PaymentStore }> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-capture-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  t.teardown(() => store.close())
  return { service, store }
}

/** A manual payment the processor took to requires_capture (claim, then the PSP's authorization): version 3. */
async function authorized (service: PaymentService, id: string): Promise<void> {
  await service.create('m', id, request, Date.now())
  await service.transition('m', id, { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  await service.transition('m', id, { to: 'requires_capture', expectedVersion: 2, actor: 'processor', ...details, pspReference: `ch_${id}` }, Date.now())
}

function webhook (target: IncomingWebhook['target'], amountCaptured?: number): IncomingWebhook {
  return {
    provider: 'sandbox', pspEventId: `evt_${Math.random()}`, type: `charge.${target}`, payloadJson: '{}', target, pspReference: 'ch_co_w',
    amount: 1999, currency: 'EUR', failureCode: '', failureMessage: '', ...(amountCaptured !== undefined ? { amountCaptured } : {}),
  }
}

t.test('capture_method is part of the create\'s hash only when manual', async (t) => {
  const { captureMethod: _, ...automatic } = request
  t.same(hashCreateRequest('m', automatic), hashCreateRequest('m', { ...automatic, captureMethod: 'automatic' }), 'automatic hashes as before')
  t.notSame(hashCreateRequest('m', automatic), hashCreateRequest('m', request))
})

t.test('a capture is recorded at the next version, published, long-polls woken; a repeat is answered as it is', async (t) => {
  const { service, store } = await openService(t)
  await authorized(service, 'co_a')
  t.match(store.getPayment('m', 'co_a'), { status: 'requires_capture', captureMethod: 'manual', pspReference: 'ch_co_a', version: 3 })
  const sequence = store.meta.nextSequence
  const woken = service.waitForChange('m', 'co_a', 3, 10_000, () => {})
  t.match(await service.capture('m', 'co_a', 1200, Date.now()), { kind: 'requested', payment: { status: 'requires_capture', amountToCapture: 1200, version: 4 } })
  t.match(await woken, { version: 4, amountToCapture: 1200 })
  const event = decodeChangeEvent(await store.db.get(changeLogKey(sequence), { valueEncoding: 'view' }) as Uint8Array, testKeyRing)
  t.match(event, { type: 'payment.capture_requested', version: 4, previousStatus: 'requires_capture', actor: 'api', payment: { amountToCapture: 1200 } })
  t.match(await service.capture('m', 'co_a', 1200, Date.now()), { kind: 'replayed', payment: { version: 4 } })
  t.match(await service.capture('m', 'co_a', undefined, Date.now()), { kind: 'replayed', payment: { version: 4 } })
  await t.rejects(service.capture('m', 'co_a', 1000, Date.now()), { code: 'payment_not_capturable', extra: { amount_to_capture: 1200 } })
  await t.rejects(service.cancel('m', 'co_a', Date.now()), { code: 'payment_not_cancelable', extra: { current_status: 'requires_capture' } },
    'a capture in progress is not canceled')
  t.equal(store.meta.nextSequence, sequence + 1, 'repeats and refusals wrote nothing')
  await t.rejects(service.capture('other', 'co_a', undefined, Date.now()), { code: 'payment_not_found' })

  const done = await service.transition('m', 'co_a', { to: 'succeeded', expectedVersion: 4, actor: 'processor', ...details, pspReference: 'ch_co_a' }, Date.now())
  t.match(done, { applied: true, payment: { status: 'succeeded', amountCaptured: 1200, version: 5 } })
  t.match(await service.capture('m', 'co_a', undefined, Date.now()), { kind: 'replayed', payment: { status: 'succeeded', version: 5 } })
})

t.test('a capture beyond the authorization, or of a payment not awaiting capture, is refused', async (t) => {
  const { service } = await openService(t)
  await service.create('m', 'co_b', request, Date.now())
  await t.rejects(service.capture('m', 'co_b', undefined, Date.now()), { code: 'payment_not_capturable', extra: { current_status: 'pending' } })
  const { captureMethod: _, ...automatic } = request
  await service.create('m', 'co_auto', automatic, Date.now())
  await t.rejects(service.capture('m', 'co_auto', undefined, Date.now()), { code: 'payment_not_capturable' })
  await authorized(service, 'co_c')
  await t.rejects(service.capture('m', 'co_c', 2000, Date.now()), { code: 'capture_amount_exceeds_authorized', extra: { amount_capturable: 1999 } })
  t.match(await service.cancel('m', 'co_c', Date.now()), { applied: true, payment: { status: 'canceled', pspReference: 'ch_co_c' } })
  await t.rejects(service.capture('m', 'co_c', undefined, Date.now()), { code: 'payment_not_capturable', extra: { current_status: 'canceled' } })
})

t.test('capture racing cancel: exactly one wins', async (t) => {
  const { service } = await openService(t)
  for (let i = 0; i < 20; i++) {
    const id = `co_race_${i}`
    await authorized(service, id)
    const order = i % 2 === 0
    const results = await Promise.allSettled(order
      ? [service.capture('m', id, undefined, Date.now()), service.cancel('m', id, Date.now())]
      : [service.cancel('m', id, Date.now()), service.capture('m', id, undefined, Date.now())])
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, `${id}: one of them wins`)
  }
})

t.test('the move to succeeded needs the capture asked for; only a manual payment awaits one', async (t) => {
  const { service } = await openService(t)
  await authorized(service, 'co_d')
  await t.rejects(service.transition('m', 'co_d', { to: 'succeeded', expectedVersion: 3, actor: 'processor', ...details, pspReference: 'ch_co_d' }, Date.now()),
    { code: 'invalid_transition' }, 'no capture was asked for')
  const { captureMethod: _, ...automatic } = request
  await service.create('m', 'co_e', automatic, Date.now())
  await t.rejects(service.transition('m', 'co_e', { to: 'requires_capture', expectedVersion: 1, actor: 'processor', ...details, pspReference: 'ch_e' }, Date.now()),
    { code: 'invalid_transition' })
  await service.create('m', 'co_f', request, Date.now())
  await t.rejects(service.transition('m', 'co_f', { to: 'succeeded', expectedVersion: 1, actor: 'processor', ...details, pspReference: 'ch_f' }, Date.now()),
    { code: 'invalid_transition' }, 'a manual payment never succeeds uncaptured')
})

t.test('the PSP\'s webhooks: authorization, and a capture applied only for the amount asked for', async (t) => {
  const { service } = await openService(t)
  await service.create('m', 'co_w', request, Date.now())
  t.match(await service.receiveWebhook('m', 'co_w', webhook('requires_capture'), Date.now()), { applied: true, payment: { status: 'requires_capture', pspReference: 'ch_co_w' } })
  t.match(await service.receiveWebhook('m', 'co_w', webhook('succeeded', 1999), Date.now()), { applied: false, note: 'capture_mismatch' }, 'no capture asked for')
  await service.capture('m', 'co_w', 1500, Date.now())
  t.match(await service.receiveWebhook('m', 'co_w', webhook('succeeded', 1999), Date.now()), { applied: false, note: 'capture_mismatch' }, 'another amount')
  t.match(await service.receiveWebhook('m', 'co_w', webhook('succeeded', 1500), Date.now()), { applied: true, payment: { status: 'succeeded', amountCaptured: 1500 } })
})

t.test('the PSP\'s void (its window over) before the processor recorded the authorization: applied; the late record is refused', async (t) => {
  const { service } = await openService(t)
  await service.create('m', 'co_v', request, Date.now())
  await service.transition('m', 'co_v', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  const voided = { ...webhook('canceled'), pspReference: 'ch_v', failureCode: 'authorization_expired' }
  t.match(await service.receiveWebhook('m', 'co_v', voided, Date.now()), { applied: true, payment: { status: 'canceled', failureCode: 'authorization_expired' } })
  await t.rejects(service.transition('m', 'co_v', { to: 'requires_capture', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_v' }, Date.now()),
    { code: 'stale_version' })
})

t.test('refunds of a captured payment are bounded by what was captured', async (t) => {
  const { service } = await openService(t)
  await authorized(service, 'co_r')
  await t.rejects(service.createRefund('m', 'co_r', 'k0', { amount: 1, reason: '' }, Date.now()), { code: 'payment_not_refundable' })
  await service.capture('m', 'co_r', 800, Date.now())
  await service.transition('m', 'co_r', { to: 'succeeded', expectedVersion: 4, actor: 'processor', ...details, pspReference: 'ch_co_r' }, Date.now())
  await t.rejects(service.createRefund('m', 'co_r', 'k1', { amount: 801, reason: '' }, Date.now()),
    { code: 'refund_amount_exceeds_available', extra: { amount_available: 800 } })
  t.match(await service.createRefund('m', 'co_r', 'k2', { amount: undefined, reason: '' }, Date.now()), { kind: 'created', refund: { amount: 800 } })
})

t.test('an authorization awaiting its capture is not open work (no stuck-payment alert); its capture is, from the request', async (t) => {
  const { service, store } = await openService(t)
  const createdAtMs = Date.now() - 3 * 24 * 3_600_000
  await service.create('m', 'co_o', request, createdAtMs)
  t.match(await store.scanOpen(Date.now(), 60_000, 100), { open: 1 })
  await service.transition('m', 'co_o', { to: 'requires_capture', expectedVersion: 1, actor: 'processor', ...details, pspReference: 'ch_o' }, createdAtMs)
  t.match(await store.scanOpen(Date.now(), 60_000, 100), { open: 0 }, 'days at requires_capture alert nobody')
  const askedAtMs = Date.now() - 1_000
  await service.capture('m', 'co_o', undefined, askedAtMs)
  const scan = await store.scanOpen(Date.now(), 60_000, 100)
  t.match(scan, { open: 1, stale: 0 }, 'the capture is open work')
  t.ok(scan.oldestAgeMs < 60_000, 'aged from the capture request, not the creation')
  await service.transition('m', 'co_o', { to: 'succeeded', expectedVersion: 3, actor: 'processor', ...details, pspReference: 'ch_o' }, Date.now())
  t.match(await store.scanOpen(Date.now(), 60_000, 100), { open: 0 })
})
