// Stripe's idempotency semantics, keyed by checkout id, through the real nginx.

import t from 'tap'
import { createPayment, getInternal, newCheckoutId, validBody } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo

t.test('a new payment is accepted as pending with version 1', async (t) => {
  const id = newCheckoutId('idem')
  const res = await createPayment(stack.publicUrl, key, id, { ...validBody, metadata: { order: '42' } })
  t.equal(res.status, 202)
  t.match(res.body, { checkout_id: id, status: 'pending', amount: 1999, currency: 'EUR', version: 1, metadata: { order: '42' } })
  t.match(res.body.created_at, /^\d{4}-\d\d-\d\dT/)
  const stored = await getInternal(stack.internalUrl, id)
  t.equal(stored.status, 200)
  t.equal(stored.body.merchant_id, 'merchant_demo', 'merchant comes from the key')
})

t.test('the same request again replays the stored payment', async (t) => {
  const id = newCheckoutId('idem')
  const first = await createPayment(stack.publicUrl, key, id)
  const again = await createPayment(stack.publicUrl, key, id)
  t.equal(first.status, 202)
  t.equal(again.status, 200)
  t.equal(again.headers['idempotent-replayed'], 'true')
  // The replay shows the payment as stored now (a processor may have moved it on): same payment.
  for (const field of ['checkout_id', 'amount', 'currency', 'payment_method', 'description', 'created_at']) {
    t.equal(again.body[field], first.body[field], field)
  }
})

t.test('the same id with different parameters is a 409 and changes nothing', async (t) => {
  const id = newCheckoutId('idem')
  t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)
  const res = await createPayment(stack.publicUrl, key, id, { ...validBody, amount: 2000 })
  t.equal(res.status, 409)
  t.equal(res.body.code, 'idempotency_key_reuse')
  const stored = await getInternal(stack.internalUrl, id)
  t.equal(stored.body.amount, 1999)
})

t.test('50 concurrent requests with one id make exactly one payment', async (t) => {
  const id = newCheckoutId('idem')
  const responses = await Promise.all(Array.from({ length: 50 }, () => createPayment(stack.publicUrl, key, id)))
  const byStatus = new Map<number, number>()
  for (const res of responses) byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1)
  t.equal(byStatus.get(202), 1, `exactly one 202: ${JSON.stringify([...byStatus])}`)
  for (const res of responses) {
    if (res.status === 409) t.equal(res.body.code, 'idempotency_key_in_use')
    else if (res.status === 200) t.equal(res.headers['idempotent-replayed'], 'true')
    else t.equal(res.status, 202)
  }
  const stored = await getInternal(stack.internalUrl, id)
  const created = responses.find((res) => res.status === 202)!
  t.equal(stored.body.created_at, created.body.created_at, 'the one payment is the one that was answered 202')
})

t.test('an id another merchant used is a new payment of this merchant, and reveals nothing of the other', async (t) => {
  const id = newCheckoutId('idem')
  t.equal((await createPayment(stack.publicUrl, key, id, { ...validBody, description: 'secret order' })).status, 202)
  const other = await createPayment(stack.publicUrl, stack.apiKeys.merchant_other, id, validBody)
  t.equal(other.status, 202, 'checkout ids are per merchant: not a conflict, another payment')
  t.notMatch(other.text, /secret order|merchant_demo/)
  const replay = await createPayment(stack.publicUrl, stack.apiKeys.merchant_other, id, validBody)
  t.equal(replay.status, 200, 'the other merchant\'s own idempotent replay')
  t.notMatch(replay.text, /secret order|merchant_demo/)
  const reuse = await createPayment(stack.publicUrl, stack.apiKeys.merchant_other, id, { ...validBody, description: 'secret order' })
  t.equal(reuse.body.code, 'idempotency_key_reuse', 'judged against its own payment only')
  const stored = await getInternal(stack.internalUrl, id)
  t.match(stored.body, { merchant_id: 'merchant_demo', description: 'secret order' }, 'the first merchant\'s payment is untouched')
  const theirs = await getInternal(stack.internalUrl, id, undefined, 'merchant_other')
  t.match(theirs.body, { merchant_id: 'merchant_other', amount: validBody.amount })
})
