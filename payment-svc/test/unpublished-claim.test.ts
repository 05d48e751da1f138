// The processor's claim (a move to processing with `publish: false`) is written like any change,
// so it guards the payment, but adds no change-log entry; the outcome after it is published with
// a version that counts the claim.

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

t.test('a claim is durable, guards the payment, and is not in the change log', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-claim-')), 'db')
  const store = new PaymentStore(dir, { sealer: testKeyRing })
  await store.open('n1', Date.now())
  const committed: number[] = []
  const service = new PaymentService('n1', store, defaultLimits, {
    onWriteFailure: (error) => { throw error },
    onChangeEventsCommitted: (batch) => committed.push(batch.events.length),
  })
  await service.create('m', 'co_claim', request, Date.now())
  const sequenceAfterCreate = store.meta.nextSequence
  const claim = await service.transition('m', 'co_claim', { to: 'processing', expectedVersion: 1, actor: 'processor', publish: false, ...details }, Date.now())
  t.match(claim, { applied: true, payment: { status: 'processing', version: 2 } })
  t.equal(store.meta.nextSequence, sequenceAfterCreate, 'no change-log entry for the claim')
  t.same(committed, [1, 0], 'the claim\'s batch handed no event to the relay')
  t.match(await service.transition('m', 'co_claim', { to: 'processing', expectedVersion: 1, actor: 'other', publish: false, ...details }, Date.now()),
    { applied: false, payment: { version: 2 } }, 'a repeated claim changes nothing')
  await t.rejects(service.transition('m', 'co_claim', { to: 'failed', expectedVersion: 1, actor: 'other', ...details }, Date.now()),
    { code: 'stale_version' }, 'a writer that did not see the claim is refused')
  t.equal(store.meta.nextSequence, sequenceAfterCreate)
  await service.transition('m', 'co_claim', { to: 'succeeded', expectedVersion: 2, actor: 'processor', ...details, pspReference: 'ch_1' }, Date.now())
  const outcome = decodeChangeEvent(await store.db.get(changeLogKey(sequenceAfterCreate), { valueEncoding: 'view' }) as Uint8Array, testKeyRing)
  t.match(outcome, { type: 'payment.status_changed', version: 3, previousStatus: 'processing', payment: { status: 'succeeded' } },
    'the outcome is the next entry, its version counting the claim')
  await store.close()
  const reopened = new PaymentStore(dir, { sealer: testKeyRing })
  await reopened.open('n1', Date.now())
  t.teardown(() => reopened.close())
  t.match(reopened.getPayment('m', 'co_claim'), { status: 'succeeded', version: 3 }, 'durable across a reopen')
})
