// A PSP webhook that only confirms what the payment already says (same status, same PSP
// reference) is acknowledged without a write: no change event, so nothing travels to Kafka and
// Postgres for it. One that disagrees while changing nothing is still recorded.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { PaymentStore } from '../store.ts'

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }
const noFailure = { failureCode: '', failureMessage: '' }

async function succeededPayment (t: { teardown: (fn: () => unknown) => void }, checkoutId: string): Promise<{ service: PaymentService, store: PaymentStore }> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-webhook-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  await service.create('m', checkoutId, request, Date.now())
  await service.transition('m', checkoutId, { to: 'processing', expectedVersion: 1, actor: 'processor', pspReference: '', ...noFailure }, Date.now())
  await service.transition('m', checkoutId, { to: 'succeeded', expectedVersion: 2, actor: 'processor', pspReference: 'ch_1', ...noFailure }, Date.now())
  return { service, store }
}

function webhook (eventId: string, overrides: Partial<IncomingWebhook> = {}): IncomingWebhook {
  return {
    provider: 'sandbox', pspEventId: eventId, type: 'charge.succeeded', payloadJson: '{}', target: 'succeeded',
    pspReference: 'ch_1', amount: 1999, currency: 'EUR', ...noFailure, ...overrides,
  }
}

t.test('a confirming webhook writes nothing', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_confirm')
  const sequenceBefore = store.meta.nextSequence
  const first = await service.receiveWebhook('m', 'co_confirm', webhook('evt_1'), Date.now())
  t.match(first, { duplicate: false, applied: false, note: 'already_applied', payment: { status: 'succeeded', version: 3 } })
  t.equal(store.meta.nextSequence, sequenceBefore, 'no change-log entry')
  t.notOk(store.hasWebhook('sandbox', 'evt_1'), 'no dedup key either')
  const again = await service.receiveWebhook('m', 'co_confirm', webhook('evt_1'), Date.now())
  t.match(again, { duplicate: false, applied: false, note: 'already_applied' }, 'a redelivery is the same no-op')
  t.equal(store.meta.nextSequence, sequenceBefore)
})

t.test('a webhook that disagrees is recorded even when it changes nothing', async (t) => {
  const { service, store } = await succeededPayment(t, 'co_disagree')
  const sequenceBefore = store.meta.nextSequence
  const otherReference = await service.receiveWebhook('m', 'co_disagree', webhook('evt_2', { pspReference: 'ch_other' }), Date.now())
  t.match(otherReference, { duplicate: false, applied: false, note: 'already_applied' })
  t.equal(store.meta.nextSequence, sequenceBefore + 1, 'another charge reference is recorded')
  t.ok(store.hasWebhook('sandbox', 'evt_2'))
  const otherStatus = await service.receiveWebhook('m', 'co_disagree', webhook('evt_3', { type: 'charge.failed', target: 'failed' }), Date.now())
  t.match(otherStatus, { duplicate: false, applied: false, note: 'terminal', payment: { status: 'succeeded' } })
  t.equal(store.meta.nextSequence, sequenceBefore + 2, 'a late failure for a succeeded payment is recorded')
  t.match(await service.receiveWebhook('m', 'co_disagree', webhook('evt_3', { type: 'charge.failed', target: 'failed' }), Date.now()), { duplicate: true })
})
