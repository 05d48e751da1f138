// The customer's next action on a requires_action payment: kept only while the payment waits for
// the customer, shown in Stripe's shape, taken from the processor or the PSP's webhook only when
// it is an acceptable URL.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { defaultLimits } from '../limits.ts'
import { isAcceptableNextActionUrl, nextActionUrlLengthMax } from '../next-action.ts'
import { PaymentService } from '../payment-service.ts'
import { paymentView } from '../payment-view.ts'
import { PaymentStore } from '../store.ts'
import { parseSandboxWebhook } from '../webhooks/sandbox.ts'

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_requires_action', description: '', customerRef: '', metadata: {} }
const details = { failureCode: '', failureMessage: '', pspReference: '' }
const url = 'https://psp.example/challenge/ch_1?token=abc'

t.test('acceptable URLs', async (t) => {
  for (const ok of [url, 'http://127.0.0.1:7090/challenge/ch_1?token=x']) t.ok(isAcceptableNextActionUrl(ok), ok)
  for (const bad of ['', 'javascript:alert(1)', 'ftp://psp.example/', '/challenge/ch_1', 'https://u:p@psp.example/',
    'https://psp.example/4111-1111-1111-1111', `https://psp.example/${'a'.repeat(nextActionUrlLengthMax)}`]) {
    t.notOk(isAcceptableNextActionUrl(bad), bad.slice(0, 60))
  }
})

t.test('kept while requires_action, durable, gone once the payment moves on', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-next-action-')), 'db')
  const store = new PaymentStore(dir, { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  const service = new PaymentService('n1', store, defaultLimits, { onWriteFailure: (error) => { throw error } })
  await service.create('m', 'co_action', request, Date.now())
  t.notOk(paymentView(store.getPayment('m', 'co_action')!).next_action, 'none while pending')
  await service.transition('m', 'co_action', { to: 'requires_action', expectedVersion: 1, actor: 'processor', ...details, pspReference: 'ch_1', nextActionUrl: url }, Date.now())
  const waiting = store.getPayment('m', 'co_action')!
  t.equal(waiting.nextActionUrl, url, 'stored with the payment')
  t.same(paymentView(waiting).next_action, { type: 'redirect_to_url', redirect_to_url: { url } })
  await service.transition('m', 'co_action', { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_1' }, Date.now())
  const done = store.getPayment('m', 'co_action')!
  t.equal(done.nextActionUrl, undefined, 'cleared when the customer acted')
  t.notOk(paymentView(done).next_action)
})

t.test('the sandbox webhook carries the URL of a charge awaiting the customer', async (t) => {
  const event = (type: string, nextAction: unknown): unknown => ({
    id: 'evt_1', type, data: { object: { id: 'ch_1', reference: 'co_1', merchant_id: 'm', amount: 1999, currency: 'EUR', status: 'requires_action', next_action: nextAction } },
  })
  const redirect = { type: 'redirect_to_url', redirect_to_url: { url } }
  t.equal(parseSandboxWebhook(event('charge.requires_action', redirect)).nextActionUrl, url)
  t.equal(parseSandboxWebhook(event('charge.succeeded', redirect)).nextActionUrl, undefined, 'only with requires_action')
  t.equal(parseSandboxWebhook(event('charge.requires_action', { type: 'redirect_to_url', redirect_to_url: { url: 'javascript:x' } })).nextActionUrl, undefined,
    'an unacceptable URL is dropped, the event still applies')
  t.equal(parseSandboxWebhook(event('charge.requires_action', undefined)).nextActionUrl, undefined)
})
