// POST /v1/charges/{id}/cancel: a charge awaiting customer action becomes canceled, durably, with
// a signed charge.canceled event; a repeat answers the same charge; anything else is refused and
// left as it is. It never settles.

import t from 'tap'
import { call, charge, chargeBody, eventually, startPsp, startReceiver, stats, tempDir } from './helpers.ts'

const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 4, webhookDeliveryTimeoutMs: 500 }

t.test('a requires_action charge is canceled once; a repeat answers it again', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: fastRetries })
  const action = await charge(psp, chargeBody('pm_card_requires_action'))
  t.equal(action.body.status, 'requires_action')
  const canceled = await call(`${psp.url}/v1/charges/${action.body.id}/cancel`, { method: 'POST' })
  t.equal(canceled.status, 200)
  t.match(canceled.body, { id: action.body.id, status: 'canceled', canceled_at: Number, fee: 0, net: 0 })
  t.notOk(canceled.body.settled_on, 'never settles')
  t.notOk(canceled.headers['idempotent-replayed'])
  const again = await call(`${psp.url}/v1/charges/${action.body.id}/cancel`, { method: 'POST' })
  t.equal(again.status, 200)
  t.same(again.body, canceled.body, 'the same charge')
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.same((await call(`${psp.url}/v1/charges/${action.body.id}`)).body, canceled.body, 'stored')
  t.match((await stats(psp)).charges, { requires_action: 0, canceled: 1 })
  await receiver.waitFor((r) => r.some((hook) => hook.event.type === 'charge.canceled'), 'the charge.canceled event')
  const hooks = receiver.forReference(action.body.reference).filter((hook) => hook.event.type === 'charge.canceled')
  t.equal(hooks.length, 1, 'one event, for the first cancel only')
  t.same(hooks[0]!.event.data.object, canceled.body)
  await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'the outbox to empty')
})

t.test('other charges are not cancelable; unknown ids are missing; only POST', async (t) => {
  const psp = await startPsp(t)
  for (const method of ['pm_card_visa', 'pm_card_declined']) {
    const made = await charge(psp, chargeBody(method))
    const refused = await call(`${psp.url}/v1/charges/${made.body.id}/cancel`, { method: 'POST' })
    t.equal(refused.status, 400, method)
    t.match(refused.body, { error: { type: 'invalid_request_error', code: 'charge_not_cancelable' } })
    t.same((await call(`${psp.url}/v1/charges/${made.body.id}`)).body, made.body, 'unchanged')
  }
  const missing = await call(`${psp.url}/v1/charges/ch_nothing/cancel`, { method: 'POST' })
  t.equal(missing.status, 404)
  t.equal(missing.body.error.code, 'resource_missing')
  t.equal((await call(`${psp.url}/v1/charges/ch_nothing/cancel`)).status, 405)
})

t.test('two cancels at once: one writes, the other is told to retry or sees it done', async (t) => {
  const psp = await startPsp(t)
  const action = await charge(psp, chargeBody('pm_card_requires_action'))
  const replies = await Promise.all([1, 2, 3].map(() => call(`${psp.url}/v1/charges/${action.body.id}/cancel`, { method: 'POST' })))
  for (const reply of replies) {
    t.ok(reply.status === 200 || (reply.status === 409 && reply.body.error.code === 'idempotency_key_in_use'), `answered ${reply.status}`)
  }
  t.match((await stats(psp)).charges, { requires_action: 0, canceled: 1 }, 'counted once')
})

t.test('a canceled charge survives a restart', async (t) => {
  const dataDir = tempDir()
  const first = await startPsp(t, { dataDir })
  const action = await charge(first, chargeBody('pm_card_requires_action'))
  await call(`${first.url}/v1/charges/${action.body.id}/cancel`, { method: 'POST' })
  await first.stop()
  const second = await startPsp(t, { dataDir })
  t.match((await call(`${second.url}/v1/charges/${action.body.id}`)).body, { status: 'canceled' })
  t.match((await stats(second)).charges, { requires_action: 0, canceled: 1 })
})
