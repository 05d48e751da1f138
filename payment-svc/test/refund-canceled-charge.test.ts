// A canceled payment's charge the PSP took anyway is given back whole, once (issue #14):
// only for a canceled payment, only for its own PSP charge, one refund however often asked.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { requireAllowed } from '../internal-auth.ts'
import { defaultLimits } from '../limits.ts'
import { PaymentService } from '../payment-service.ts'
import { PaymentStore } from '../store.ts'

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_requires_action', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }

async function open (t: { teardown: (fn: () => unknown) => void }): Promise<{ service: PaymentService, store: PaymentStore }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-cxlrefund-')), 'db')
  const store = new PaymentStore(dir, { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  return { service: new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } }), store }
}

t.test('the whole charge, once, for a canceled payment holding that charge', async (t) => {
  const { service } = await open(t)
  await service.create('m', 'co_cx', request, Date.now())
  await service.transition('m', 'co_cx', { to: 'requires_action', expectedVersion: 1, actor: 'processor', ...details, pspReference: 'ch_1' }, Date.now())
  await t.rejects(service.refundCanceledCharge('m', 'co_cx', 'ch_1', 'processor:cancel', Date.now()), { code: 'payment_not_refundable' }, 'not before it is canceled')
  await service.cancel('m', 'co_cx', Date.now())
  await t.rejects(service.refundCanceledCharge('m', 'co_cx', 'ch_other', 'processor:cancel', Date.now()), { code: 'validation_failed' }, 'not another charge')
  const first = await service.refundCanceledCharge('m', 'co_cx', 'ch_1', 'processor:cancel', Date.now())
  t.match(first, { kind: 'created', refund: { amount: 1999, status: 'pending' }, payment: { status: 'canceled', version: 4 } })
  const again = await service.refundCanceledCharge('m', 'co_cx', 'ch_1', 'processor:cancel', Date.now())
  t.match(again, { kind: 'replayed', refund: { id: first.refund.id }, payment: { version: 4 } }, 'a repeat answers the same refund')
  await t.rejects(service.createRefund('m', 'co_cx', 'k1', { amount: 1, reason: '' }, Date.now()), { code: 'payment_not_refundable' },
    'merchants still refund only succeeded payments')
})

t.test('only the processor may ask', async (t) => {
  t.doesNotThrow(() => requireAllowed('processor', { kind: 'refund_canceled_charge' }))
  t.throws(() => requireAllowed('ops', { kind: 'refund_canceled_charge' }), { code: 'internal_forbidden' })
  t.throws(() => requireAllowed('audit', { kind: 'refund_canceled_charge' }), { code: 'internal_forbidden' })
})
