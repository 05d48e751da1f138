// Merchant B can neither read nor overwrite merchant A's payment.

import t from 'tap'
import { call, createPayment, getInternal, getPayment, internalPaymentPath, newCheckoutId } from '../helpers/api.ts'
import { createSettledForAction } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()

t.test('another merchant gets 404 on GET, with or without long-poll', async (t) => {
  const id = newCheckoutId('iso')
  t.equal((await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)).status, 202)
  for (const query of ['', '?wait_ms=50']) {
    const res = await getPayment(stack.publicUrl, stack.apiKeys.merchant_other, id, query)
    t.equal(res.status, 404)
    t.equal(res.body.code, 'payment_not_found')
    t.notMatch(res.text, /1999|merchant_demo/)
  }
  const own = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)
  t.equal(own.status, 200)
  t.equal(own.body.checkout_id, id)
})

t.test('GET of an unknown id is 404', async (t) => {
  const res = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, newCheckoutId('iso'))
  t.equal(res.status, 404)
  t.equal(res.body.code, 'payment_not_found')
})

t.test('the internal API is not reachable through the public server', async (t) => {
  const { id, version } = await createSettledForAction('iso')
  const res = await call(`${stack.publicUrl}${internalPaymentPath(id)}/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-payment-checkout-id': id, 'x-ringpay-internal-token': stack.internalTokens.processor },
    body: JSON.stringify({ to: 'succeeded', expected_version: version, actor: 'attacker', psp_reference: 'ch_forged' }),
  })
  t.equal(res.status, 404)
  const after = (await getInternal(stack.internalUrl, id)).body
  t.equal(after.status, 'requires_action')
  t.equal(after.version, version)
})
