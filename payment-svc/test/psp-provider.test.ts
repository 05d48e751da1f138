// Issue #16 on the node: the PSP a payment is routed to is recorded with the processor's claim,
// durably; a failover is a version-checked move that only a payment no PSP holds a charge of may
// make; a PSP other than the payment's is heard but not applied.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { PaymentStore } from '../store.ts'
import { paymentView } from '../payment-view.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'

const request = { amount: 1999, currency: 'NOK', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }

async function nodeService (t: any): Promise<{ service: PaymentService, store: PaymentStore, dir: string }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-route-')), 'db')
  const store = new PaymentStore(dir, { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close().catch(() => {}))
  return { service: new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } }), store, dir }
}

function webhook (provider: string, target: 'succeeded' | 'failed', over: Partial<IncomingWebhook> = {}): IncomingWebhook {
  return { provider, pspEventId: `evt_${provider}_${target}`, type: 'x', payloadJson: '{}', target, pspReference: `ref_${provider}`, amount: 1999, currency: 'NOK', failureCode: '', failureMessage: '', ...over }
}

t.test('the claim records the provider durably; a failover moves it only while no PSP holds a charge', async (t) => {
  const { service, store, dir } = await nodeService(t)
  await service.create('m', 'co_route', request, Date.now())
  const claim = await service.transition('m', 'co_route', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, pspProvider: 'nimbus', ...details }, Date.now())
  t.match(claim, { applied: true, payment: { status: 'processing', version: 2, pspProvider: 'nimbus' } })
  t.equal(paymentView(claim.payment).psp_provider, 'nimbus', 'in the API view')
  t.match(await service.transition('m', 'co_route', { to: 'processing', expectedVersion: 2, actor: 'processor', publish: false, pspProvider: 'nimbus', ...details }, Date.now()),
    { applied: false, payment: { version: 2 } }, 'the same claim again: a no-op')
  await t.rejects(service.transition('m', 'co_route', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, pspProvider: 'sandbox', ...details }, Date.now()),
    { code: 'stale_version' }, 'a failover against an old version is refused')
  const moved = await service.transition('m', 'co_route', { to: 'processing', expectedVersion: 2, actor: 'processor', publish: false, pspProvider: 'sandbox', ...details }, Date.now())
  t.match(moved, { applied: true, payment: { status: 'processing', version: 3, pspProvider: 'sandbox' } }, 'the failover')
  t.match(await service.receiveWebhook('m', 'co_route', webhook('nimbus', 'succeeded'), Date.now()),
    { duplicate: false, applied: false, note: 'other_provider', payment: { status: 'processing' } }, 'the PSP it left is not applied')
  t.match(await service.receiveWebhook('m', 'co_route', webhook('sandbox', 'succeeded'), Date.now()),
    { applied: true, payment: { status: 'succeeded', pspProvider: 'sandbox', pspReference: 'ref_sandbox' } }, 'its own PSP is')
  await store.close()
  const reopened = new PaymentStore(dir, { sealer: testKeyRing })
  await reopened.open('n1', Date.now())
  t.teardown(() => reopened.close())
  t.match(reopened.getPayment('m', 'co_route'), { status: 'succeeded', pspProvider: 'sandbox' }, 'durable across a reopen')
})

t.test('a payment holding a PSP charge never moves to another PSP', async (t) => {
  const { service } = await nodeService(t)
  await service.create('m', 'co_held', request, Date.now())
  await service.transition('m', 'co_held', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, pspProvider: 'nimbus', ...details }, Date.now())
  // The customer's action at nimbus, then back to processing: the charge is nimbus'.
  await service.transition('m', 'co_held', { to: 'requires_action', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_at_nimbus' }, Date.now())
  await service.transition('m', 'co_held', { to: 'processing', expectedVersion: 3, actor: 'processor', ...details }, Date.now())
  await t.rejects(service.transition('m', 'co_held', { to: 'processing', expectedVersion: 4, actor: 'processor', publish: false, pspProvider: 'sandbox', ...details }, Date.now()),
    { code: 'invalid_transition' })
})
