// The PSP attempt log stores each request and answer as JSON, with any card number a provider's
// text might hold masked (card numbers are never stored), and the JSON still valid.

import type pg from 'pg'
import t from 'tap'
import { createLogger } from '../../lib/log.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { AttemptLog } from '../attempt-log.ts'
import { attemptTokenContext, openPaymentMethodColumn, PaymentMethodColumnSealer } from '../sealed-columns.ts'

t.test('a card number in a PSP answer is stored masked; the rest of the JSON as it was', async (t) => {
  const inserted: unknown[][] = []
  const pool = { query: async (config: { name: string, values: unknown[] }) => { inserted.push(config.values); return { rows: [] } } } as unknown as pg.Pool
  const attempts = new AttemptLog(pool, testKeyRing, { rowsMax: 10, flushIntervalMs: 1_000, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, createLogger('attempt-log-test', {}))
  const response = { id: 'ch_1', amount: 1999, created: 1_765_000_000, failure_message: 'card 4111 1111 1111 1111 is blocked' }
  await attempts.record({
    merchantId: 'm', checkoutId: 'co_1', provider: 'sandbox', idempotencyKey: 'co_1', attempt: 1, request: { amount: 1999 }, httpStatus: 402,
    response, outcome: 'failed', errorCode: undefined, latencyMs: 12, startedAt: new Date(),
  })
  await attempts.flush()
  t.equal(inserted.length, 1, 'one multi-row insert')
  const stored = (inserted[0]![6] as string[])[0]!
  t.notOk(stored.includes('4111 1111 1111 1111'), 'the card number is not stored')
  t.same(JSON.parse(stored), { ...response, failure_message: 'card **** **** **** 1111 is blocked' }, 'masked, everything else kept, still JSON')
  t.same(JSON.parse((inserted[0]![4] as string[])[0]!), { amount: 1999 }, 'the request as sent')
})

t.test('the payment method token in a stored PSP request and answer is sealed (#17 part 7)', async (t) => {
  const inserted: unknown[][] = []
  const pool = { query: async (config: { name: string, values: unknown[] }) => { inserted.push(config.values); return { rows: [] } } } as unknown as pg.Pool
  const attempts = new AttemptLog(pool, testKeyRing, { rowsMax: 10, flushIntervalMs: 1_000, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, createLogger('attempt-log-test', {}))
  await attempts.record({
    merchantId: 'm', checkoutId: 'co_2', provider: 'sandbox', idempotencyKey: 'co_2', attempt: 3,
    request: { amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa_secret', reference: 'co_2' },
    httpStatus: 200, response: { id: 'ch_2', status: 'succeeded', payment_method: 'pm_card_visa_secret' },
    outcome: 'succeeded', errorCode: undefined, latencyMs: 5, startedAt: new Date(),
  })
  await attempts.flush()
  const request = (inserted[0]![4] as string[])[0]!
  const response = (inserted[0]![6] as string[])[0]!
  t.notOk(request.includes('pm_card_visa_secret'), 'no token in the stored request')
  t.notOk(response.includes('pm_card_visa_secret'), 'no token in the stored answer')
  const storedRequest = JSON.parse(request)
  t.equal(storedRequest.amount, 1999, 'the rest kept')
  t.equal(testKeyRing.openText(storedRequest.payment_method, attemptTokenContext('co_2', 3)), 'pm_card_visa_secret')
  t.equal(testKeyRing.openText(JSON.parse(response).payment_method, attemptTokenContext('co_2', 3)), 'pm_card_visa_secret')
  t.throws(() => testKeyRing.openText(storedRequest.payment_method, attemptTokenContext('co_3', 3)), { code: 'sealed_value_auth_failed' }, 'bound to its row')
  t.equal(JSON.parse(response).payment_method, storedRequest.payment_method, 'one seal per attempt: the same token is stored sealed once')
})

t.test("payments.payment_method is sealed once per payment, and again when what it seals differs", async (t) => {
  let seals = 0
  const counting = { ...testKeyRing, sealText: (text: string, context: string) => { seals++; return testKeyRing.sealText(text, context) } } as typeof testKeyRing
  const methods = new PaymentMethodColumnSealer(counting, 4)
  const first = methods.seal('m', 'co_1', 'pm_a')
  t.equal(methods.seal('m', 'co_1', 'pm_a'), first, 'the outcome event reuses the created event’s seal')
  t.equal(seals, 1)
  t.equal(openPaymentMethodColumn(testKeyRing, 'm', 'co_1', first), 'pm_a')
  t.not(methods.seal('m2', 'co_1', 'pm_a'), first, 'another merchant: sealed anew (another context)')
  for (let i = 0; i < 6; i++) methods.seal('m', `co_x${i}`, 'pm_a')
  const sealsBefore = seals
  methods.seal('m', 'co_1', 'pm_a')
  t.equal(seals, sealsBefore + 1, 'bounded: an entry pushed out is sealed again')
})
