// Every bad field, header, size and content type gets its own problem code through the real
// nginx, and nothing is stored for a rejected request.

import t, { type Test } from 'tap'
import { call, createPayment, getInternal, newCheckoutId, validBody } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo

async function assertRejected (t: Test, checkoutId: string, res: Awaited<ReturnType<typeof call>>,
  status: number, code: string): Promise<void> {
  t.equal(res.status, status, `status ${status} for ${code}: ${res.text.slice(0, 200)}`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  t.equal(res.body?.code, code)
  t.equal(res.body?.status, status)
  const stored = await getInternal(stack.internalUrl, checkoutId)
  t.equal(stored.status, 404, 'nothing stored')
}

type BodyCase = [name: string, body: unknown, field: string, fieldCode: string]
const bodyCases: BodyCase[] = [
  ['missing amount', { currency: 'EUR', payment_method: 'pm_card_visa' }, 'amount', 'required'],
  ['zero amount', { ...validBody, amount: 0 }, 'amount', 'out_of_range'],
  ['negative amount', { ...validBody, amount: -5 }, 'amount', 'out_of_range'],
  ['fractional amount', { ...validBody, amount: 19.99 }, 'amount', 'type'],
  ['string amount', { ...validBody, amount: '1999' }, 'amount', 'type'],
  ['huge amount', { ...validBody, amount: 1e21 }, 'amount', 'type'],
  ['amount over the maximum', { ...validBody, amount: 1_000_000_000_001 }, 'amount', 'out_of_range'],
  ['missing currency', { amount: 1, payment_method: 'pm_card_visa' }, 'currency', 'required'],
  ['lower-case currency', { ...validBody, currency: 'eur' }, 'currency', 'format'],
  ['unknown currency', { ...validBody, currency: 'XYZ' }, 'currency', 'unsupported'],
  ['missing payment_method', { amount: 1, currency: 'EUR' }, 'payment_method', 'required'],
  ['payment_method with spaces', { ...validBody, payment_method: 'pm card' }, 'payment_method', 'format'],
  ['payment_method too long', { ...validBody, payment_method: 'p'.repeat(129) }, 'payment_method', 'format'],
  ['description too long', { ...validBody, description: 'd'.repeat(501) }, 'description', 'too_long'],
  ['description not a string', { ...validBody, description: 5 }, 'description', 'type'],
  ['description with control chars', { ...validBody, description: 'a\u0000b' }, 'description', 'control_characters'],
  ['customer_ref too long', { ...validBody, customer_ref: 'c'.repeat(129) }, 'customer_ref', 'too_long'],
  ['metadata an array', { ...validBody, metadata: ['a'] }, 'metadata', 'type'],
  ['metadata with a number', { ...validBody, metadata: { a: 1 } }, 'metadata.a', 'type'],
  ['metadata with too many keys', { ...validBody, metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata', 'too_many_keys'],
  ['metadata with a bad key', { ...validBody, metadata: { 'a b': 'v' } }, 'metadata.a b', 'key_format'],
  ['unknown field', { ...validBody, merchant_id: 'merchant_other' }, 'merchant_id', 'unknown_field'],
  ['__proto__ field', JSON.parse('{"amount":1,"currency":"EUR","payment_method":"pm","__proto__":{"x":1}}'), '__proto__', 'unknown_field'],
]

t.test('body validation', async (t) => {
  for (const [name, body, field, fieldCode] of bodyCases) {
    await t.test(name, async (t) => {
      const id = newCheckoutId('val')
      const res = await createPayment(stack.publicUrl, key, id, body)
      await assertRejected(t, id, res, 400, 'validation_failed')
      t.ok(res.body.errors.some((e: { field: string, code: string }) => e.field === field && e.code === fieldCode),
        `errors name ${field}/${fieldCode}: ${JSON.stringify(res.body.errors)}`)
    })
  }
})

t.test('a body that is not an object', async (t) => {
  const id = newCheckoutId('val')
  await assertRejected(t, id, await createPayment(stack.publicUrl, key, id, '[1,2]'), 400, 'validation_failed')
})

t.test('malformed JSON', async (t) => {
  const id = newCheckoutId('val')
  await assertRejected(t, id, await createPayment(stack.publicUrl, key, id, '{"amount":'), 400, 'invalid_json')
})

t.test('deeply nested JSON', async (t) => {
  const id = newCheckoutId('val')
  const deep = '['.repeat(5000) + ']'.repeat(5000)
  await assertRejected(t, id, await createPayment(stack.publicUrl, key, id, deep), 400, 'validation_failed')
})

t.test('wrong content type', async (t) => {
  const id = newCheckoutId('val')
  const res = await createPayment(stack.publicUrl, key, id, JSON.stringify(validBody), { 'content-type': 'text/plain' })
  await assertRejected(t, id, res, 415, 'unsupported_media_type')
})

t.test('non-UTF-8 charset', async (t) => {
  const id = newCheckoutId('val')
  const res = await createPayment(stack.publicUrl, key, id, JSON.stringify(validBody), { 'content-type': 'application/json; charset=latin1' })
  await assertRejected(t, id, res, 415, 'unsupported_media_type')
})

t.test('body over the size limit', async (t) => {
  const id = newCheckoutId('val')
  const res = await createPayment(stack.publicUrl, key, id, JSON.stringify({ ...validBody, description: 'x'.repeat(40_000) }))
  t.equal(res.status, 413)
  t.equal(res.body?.code, 'body_too_large')
  t.equal((await getInternal(stack.internalUrl, id)).status, 404)
})

t.test('missing API key', async (t) => {
  const id = newCheckoutId('val')
  const res = await call(`${stack.publicUrl}/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-payment-checkout-id': id },
    body: JSON.stringify(validBody),
  })
  await assertRejected(t, id, res, 401, 'unauthorized')
})

t.test('wrong API key', async (t) => {
  const id = newCheckoutId('val')
  await assertRejected(t, id, await createPayment(stack.publicUrl, 'sk_test_nope', id), 401, 'unauthorized')
})

t.test('missing checkout id is refused by nginx', async (t) => {
  const res = await call(`${stack.publicUrl}/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(validBody),
  })
  t.equal(res.status, 400)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  t.equal(res.body?.code, 'checkout_id_missing')
})

t.test('checkout id with bad characters or length', async (t) => {
  for (const id of ['has.dot', 'x'.repeat(65), 'semi;colon']) {
    const res = await createPayment(stack.publicUrl, key, id)
    t.equal(res.status, 400, id)
    t.equal(res.body?.code, 'checkout_id_invalid', id)
  }
})

t.test('raw card numbers are refused wherever they appear', async (t) => {
  const pans = ['4242424242424242', '4242 4242 4242 4242', '5555-5555-5555-4444', '378282246310005']
  for (const pan of pans) {
    for (const body of [
      { ...validBody, payment_method: pan.replace(/[ -]/g, '') },
      { ...validBody, description: `card ${pan} thanks` },
      { ...validBody, metadata: { note: pan } },
    ]) {
      const id = newCheckoutId('pan')
      await assertRejected(t, id, await createPayment(stack.publicUrl, key, id, body), 400, 'card_number_detected')
    }
  }
  const panId = '4242424242424242'
  const res = await createPayment(stack.publicUrl, key, panId)
  t.equal(res.status, 400)
  t.equal(res.body?.code, 'card_number_detected')
})

t.test('a digit run that fails Luhn is not a card number', async (t) => {
  const id = newCheckoutId('val')
  const res = await createPayment(stack.publicUrl, key, id, { ...validBody, description: 'ref 4111111111111112' })
  t.equal(res.status, 202, res.text)
})

t.test('unknown route and method', async (t) => {
  const id = newCheckoutId('val')
  const res = await call(`${stack.publicUrl}/payments/${id}`, {
    method: 'DELETE', headers: { authorization: `Bearer ${key}` },
  })
  t.equal(res.status, 405)
  t.equal(res.body?.code, 'method_not_allowed')
})

t.test('bad long-poll parameters', async (t) => {
  const id = newCheckoutId('val')
  t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)
  for (const query of ['?wait_ms=-1', '?wait_ms=30001', '?wait_ms=abc', '?wait_ms=10&after_version=x']) {
    const res = await call(`${stack.publicUrl}/payments/${id}${query}`, { headers: { authorization: `Bearer ${key}` } })
    t.equal(res.status, 400, query)
    t.equal(res.body?.code, 'invalid_query', query)
  }
})
