// The charge API against an in-process PSP: authentication, validation, each outcome rule,
// idempotency (replay, mismatch, concurrent 409), reads, and the admin views.

import t from 'tap'
import { feeFor } from '../money.ts'
import { adminCharges, call, charge, chargeBody, eventually, newReference, setConfig, startPsp, stats } from './helpers.ts'

t.test('authentication: secret key required, health and metrics open', async (t) => {
  const psp = await startPsp(t)
  const missing = await call(`${psp.url}/v1/charges/ch_x`, { headers: { authorization: '' } })
  t.equal(missing.status, 401)
  t.match(missing.body, { error: { type: 'authentication_error', code: 'authentication_required' } })
  const wrong = await call(`${psp.url}/v1/charges/ch_x`, { headers: { authorization: 'Bearer sk_test_wrong_key_000000' } })
  t.equal(wrong.status, 401)
  t.equal(wrong.body.error.code, 'invalid_api_key')
  t.equal((await call(`${psp.url}/admin/stats`, { headers: { authorization: '' } })).status, 401, 'admin routes too')
  t.same((await call(`${psp.url}/healthz`, { headers: { authorization: '' } })).body, { status: 'ok' })
  const metrics = await call(`${psp.url}/metrics`, { headers: { authorization: '' } })
  t.equal(metrics.status, 200)
  t.match(metrics.text, /psp_charges\{status="succeeded"\}/)
  t.equal((await call(`${psp.url}/v1/nothing`)).body.error.code, 'resource_missing')
  t.equal((await call(`${psp.url}/v1/charges/ch_x`, { method: 'DELETE' })).status, 405)
})

t.test('validation: every refusal names its code and parameter, and charges nothing', async (t) => {
  const psp = await startPsp(t)
  const refuse = async (body: unknown, headers: Record<string, string> = {}): Promise<any> => {
    const reply = await call(`${psp.url}/v1/charges`, { method: 'POST', headers: { 'idempotency-key': newReference('v'), ...headers }, body })
    t.ok(reply.status >= 400 && reply.status < 500, `4xx for ${JSON.stringify(body).slice(0, 80)}`)
    return reply.body.error
  }
  const noKey = await call(`${psp.url}/v1/charges`, { method: 'POST', body: chargeBody() })
  t.equal(noKey.status, 400)
  t.equal(noKey.body.error.code, 'idempotency_key_missing')
  for (const amount of [0, -5, 19.99, '1999', 1e13, null]) {
    const error = await refuse(chargeBody('pm_card_visa', { amount: amount as number }))
    t.match(error, { code: amount === null ? 'parameter_missing' : 'amount_invalid', param: 'amount' }, `amount ${amount}`)
  }
  t.match(await refuse(chargeBody('pm_card_visa', { currency: 'XXX' })), { code: 'currency_invalid', param: 'currency' })
  t.match(await refuse(chargeBody('pm_card_visa', { currency: 42 as unknown as string })), { code: 'currency_invalid' })
  t.match(await refuse(chargeBody('pm_card_stolen')), { code: 'invalid_payment_method', param: 'payment_method' })
  t.match(await refuse({ ...chargeBody(), reference: undefined }), { code: 'parameter_missing', param: 'reference' })
  t.match(await refuse({ ...chargeBody(), merchant_id: 'has space' }), { code: 'parameter_invalid', param: 'merchant_id' })
  t.match(await refuse({ ...chargeBody(), metadata: {} }), { code: 'parameter_unknown', param: 'metadata' })
  t.match(await refuse({ ...chargeBody(), description: 'x'.repeat(501) }), { code: 'parameter_invalid', param: 'description' })
  t.match(await refuse('{"amount":'), { code: 'invalid_json', type: 'invalid_request_error' })
  t.match(await refuse('[1,2]'), { code: 'invalid_json' })
  t.match(await refuse(chargeBody(), { 'idempotency-key': 'k'.repeat(256) }), { code: 'parameter_invalid', param: 'Idempotency-Key' })
  const big = await call(`${psp.url}/v1/charges`, { method: 'POST', headers: { 'idempotency-key': 'big' }, body: { ...chargeBody(), description: 'x'.repeat(20_000) } })
  t.equal(big.status, 413)
  t.equal((await stats(psp)).charges.total, 0, 'nothing was charged')

  const lower = await charge(psp, chargeBody('pm_card_visa', { currency: 'eur' }))
  t.equal(lower.status, 201)
  t.equal(lower.body.currency, 'EUR', 'currency codes are case-insensitive, answered upper case')
})

t.test('outcomes by payment method token', async (t) => {
  const psp = await startPsp(t, { runtime: { asyncDelayMs: 100 } })
  const today = new Date().toISOString().slice(0, 10)

  for (const token of ['pm_card_visa', 'pm_card_mastercard']) {
    const body = chargeBody(token, { amount: 1250, description: 'order 1' })
    const reply = await charge(psp, body)
    t.equal(reply.status, 201, token)
    t.match(reply.body, {
      id: /^ch_[0-9A-Za-z]{24}$/,
      object: 'charge',
      status: 'succeeded',
      amount: 1250,
      currency: 'EUR',
      payment_method: token,
      reference: body.reference,
      merchant_id: 'm_test',
      description: 'order 1',
      idempotency_key: body.reference,
      fee: 43,
      net: 1207,
      settled_on: today,
    })
    t.ok(Math.abs(reply.body.created - Date.now() / 1000) < 5, 'created is unix seconds')
    t.equal(reply.body.failure_code, undefined)
    t.match(reply.headers['request-id'], /^req_/)
  }
  for (const [token, code] of [['pm_card_declined', 'card_declined'], ['pm_card_insufficient_funds', 'insufficient_funds']] as const) {
    const reply = await charge(psp, chargeBody(token))
    t.equal(reply.status, 201, token)
    t.match(reply.body, { status: 'failed', failure_code: code, failure_message: String, fee: 0, net: 0 })
    t.equal(reply.body.settled_on, undefined)
  }
  const action = await charge(psp, chargeBody('pm_card_requires_action'))
  t.match(action.body, { status: 'requires_action', fee: 0, net: 0 })

  const asyncOk = await charge(psp, chargeBody('pm_card_async', { amount: 1999 }))
  const asyncDeclined = await charge(psp, chargeBody('pm_card_async_declined'))
  t.match(asyncOk.body, { status: 'pending', fee: 0, net: 0 })
  t.match(asyncDeclined.body, { status: 'pending' })
  const completed = await eventually(async () => {
    const reply = await call(`${psp.url}/v1/charges/${asyncOk.body.id}`)
    return reply.body.status === 'pending' ? undefined : reply.body
  }, 'the async charge to complete')
  t.match(completed, { id: asyncOk.body.id, status: 'succeeded', fee: feeFor(1999), net: 1999 - feeFor(1999), settled_on: today })
  t.ok(completed.succeeded_at >= completed.created, 'succeeded after it was created')
  const declined = await eventually(async () => {
    const reply = await call(`${psp.url}/v1/charges/${asyncDeclined.body.id}`)
    return reply.body.status === 'pending' ? undefined : reply.body
  }, 'the async decline')
  t.match(declined, { status: 'failed', failure_code: 'card_declined', fee: 0 })
  t.match((await stats(psp)).charges, { total: 7, succeeded: 3, failed: 3, pending: 0, requires_action: 1 })
})

t.test('idempotency: replay, mismatch, and a concurrent request with the key in progress', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody()
  const first = await charge(psp, body)
  t.equal(first.status, 201)
  t.equal(first.headers['idempotent-replayed'], undefined)
  const replay = await charge(psp, body)
  t.equal(replay.status, 200)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.same(replay.body, first.body, 'the same charge, the same body')

  const mismatch = await charge(psp, { ...body, amount: body.amount + 1 })
  t.equal(mismatch.status, 422)
  t.match(mismatch.body.error, { type: 'idempotency_error', code: 'idempotency_key_mismatch' })
  const otherDescription = await charge(psp, { ...body, description: 'changed' })
  t.equal(otherDescription.status, 422, 'every parameter counts, the description too')

  // A constant 600 ms of latency keeps the first request in progress while the second arrives
  // (with room for a slow, busy machine between the two).
  await setConfig(psp, { latencyMedianMs: 600, latencyP99Ms: 600 })
  const slow = chargeBody()
  const startedAt = Date.now()
  const inProgress = charge(psp, slow)
  await eventually(async () => ((await stats(psp)).inFlight.keysInProgress === 1 ? true : undefined), 'the first request to hold the key')
  const concurrent = await charge(psp, slow)
  t.equal(concurrent.status, 409)
  t.match(concurrent.body.error, { type: 'idempotency_error', code: 'idempotency_key_in_use' })
  const done = await inProgress
  t.equal(done.status, 201)
  t.ok(Date.now() - startedAt >= 600, 'the simulated latency was applied')
  t.equal((await charge(psp, slow)).status, 200, 'after it finished, the key replays')

  t.equal((await adminCharges(psp, slow.reference)).length, 1)
  const s = await stats(psp)
  t.match(s, { keysWithMultipleCharges: 0, idempotentReplays: 2, idempotencyMismatches: 2, idempotencyInUse: 1 })
  t.equal(s.charges.total, 2)
})

t.test('reads: by id, by idempotency key, and the admin view of every charge for a key', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody()
  const created = (await charge(psp, body)).body
  const byId = await call(`${psp.url}/v1/charges/${created.id}`)
  t.equal(byId.status, 200)
  t.same(byId.body, created)
  const missing = await call(`${psp.url}/v1/charges/ch_doesnotexist`)
  t.equal(missing.status, 404)
  t.equal(missing.body.error.code, 'resource_missing')

  const list = await call(`${psp.url}/v1/charges?idempotency_key=${encodeURIComponent(body.reference)}`)
  t.same(list.body, { object: 'list', data: [created], has_more: false })
  const none = await call(`${psp.url}/v1/charges?idempotency_key=never-used`)
  t.same(none.body.data, [])
  t.equal((await call(`${psp.url}/v1/charges`)).body.error.code, 'parameter_missing', 'listing needs a key')

  t.same(await adminCharges(psp, body.reference), [created])
  t.same(await adminCharges(psp, 'never-used'), [])
})

t.test('runtime configuration: GET and PUT /admin/config', async (t) => {
  const psp = await startPsp(t)
  const initial = await call(`${psp.url}/admin/config`)
  t.match(initial.body, { latencyMedianMs: 0, error5xxRate: 0, timeoutHoldMs: 30_000, webhookBaseUrl: null, seed: null })
  const changed = await setConfig(psp, { error5xxRate: 0.25, latencyMedianMs: 10, latencyP99Ms: 100, seed: 3 })
  t.match(changed.body, { error5xxRate: 0.25, latencyMedianMs: 10, latencyP99Ms: 100, seed: 3, rateLimitRate: 0 })
  t.same((await call(`${psp.url}/admin/config`)).body, changed.body)
  const bad = await call(`${psp.url}/admin/config`, { method: 'PUT', body: { error5xxRate: 3 } })
  t.equal(bad.status, 400)
  t.match(bad.body.error, { code: 'parameter_invalid', param: 'error5xxRate' })
  const unknown = await call(`${psp.url}/admin/config`, { method: 'PUT', body: { chaos: true } })
  t.match(unknown.body.error, { code: 'parameter_unknown', param: 'chaos' })
  const inverted = await call(`${psp.url}/admin/config`, { method: 'PUT', body: { latencyP99Ms: 5 } })
  t.match(inverted.body.error, { code: 'parameter_invalid', param: 'latencyP99Ms' })
  t.equal((await call(`${psp.url}/admin/config`)).body.error5xxRate, 0.25, 'refused patches change nothing')
})
