// Internal writers (a processor's transition, a PSP webhook) that meet their payment's previous
// write still in flight wait for it to be durable instead of being refused; a create still is
// refused, and the wait is bounded.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ProblemError } from '../errors.ts'
import { defaultLimits, type NodeLimits } from '../limits.ts'
import { PaymentService, type IncomingWebhook } from '../payment-service.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { PaymentStore } from '../store.ts'

async function openService (t: { teardown: (fn: () => unknown) => void }, limits: Partial<NodeLimits> = {}): Promise<PaymentService> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-claim-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  return new PaymentService('n1', store, { ...defaultLimits, ...limits }, { onWriteFailure: (error) => { throw error } })
}

async function problemCodeOf (promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return undefined
  } catch (error) {
    if (error instanceof ProblemError) return error.code
    throw error
  }
}

const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }

function succeededWebhook (eventId: string): IncomingWebhook {
  return {
    provider: 'sandbox', pspEventId: eventId, type: 'charge.succeeded', payloadJson: '{}', target: 'succeeded',
    pspReference: 'ch_1', amount: 1999, currency: 'EUR', failureCode: '', failureMessage: '',
  }
}

t.test('a webhook arriving while the processor\'s transition is being written waits, then applies', async (t) => {
  const service = await openService(t)
  await service.create('m', 'co_1', request, Date.now())
  // Both start in the same tick: the transition holds the id until its batch is durable.
  const transition = service.transition('m', 'co_1', { to: 'processing', expectedVersion: 1, actor: 'processor', failureCode: '', failureMessage: '', pspReference: '' }, Date.now())
  const webhook = service.receiveWebhook('m', 'co_1', succeededWebhook('evt_1'), Date.now())
  const [moved, received] = await Promise.all([transition, webhook])
  t.match(moved, { applied: true, payment: { status: 'processing', version: 2 } })
  t.match(received, { duplicate: false, applied: true, payment: { status: 'succeeded', version: 3 } }, 'applied on top of the durable transition')
  t.equal(service.get('m', 'co_1').version, 3)
})

t.test('several writers of one id queue up one behind the other', async (t) => {
  const service = await openService(t)
  await service.create('m', 'co_2', request, Date.now())
  const results = await Promise.all([
    service.transition('m', 'co_2', { to: 'processing', expectedVersion: 1, actor: 'p', failureCode: '', failureMessage: '', pspReference: '' }, Date.now()),
    service.receiveWebhook('m', 'co_2', succeededWebhook('evt_a'), Date.now()),
    service.receiveWebhook('m', 'co_2', succeededWebhook('evt_b'), Date.now()),
  ])
  t.match(results[0], { applied: true })
  t.match(results[1], { applied: true, payment: { status: 'succeeded' } })
  t.match(results[2], { duplicate: false, applied: false, note: 'already_applied' }, 'the second webhook found the first one applied')
})

t.test('a create of an id being written is still refused, and waiting is bounded', async (t) => {
  const service = await openService(t, { claimWaitersMax: 0 })
  await service.create('m', 'co_3', request, Date.now())
  const transition = service.transition('m', 'co_3', { to: 'processing', expectedVersion: 1, actor: 'p', failureCode: '', failureMessage: '', pspReference: '' }, Date.now())
  t.equal(await problemCodeOf(service.receiveWebhook('m', 'co_3', succeededWebhook('evt_c'), Date.now())), 'idempotency_key_in_use',
    'no room to wait: refused as before')
  await transition
  const creating = service.create('m', 'co_4', request, Date.now())
  t.equal(await problemCodeOf(service.create('m', 'co_4', request, Date.now())), 'idempotency_key_in_use', 'a concurrent create is refused')
  await creating
})
