// POST /v1/refunds: partial and full refunds of a succeeded charge, never past its amount (also
// when requests race); idempotent by key; outcomes by the charge's token (sync, async, failing,
// 5xx once, answer lost); refund.* webhooks; the admin index of refunds per key.

import t from 'tap'
import { call, charge, chargeBody, eventually, startPsp, startReceiver, stats, type Reply } from './helpers.ts'
import type { SandboxPsp } from '../psp.ts'

const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 4, webhookDeliveryTimeoutMs: 500 }

function refund (psp: SandboxPsp, key: string, body: Record<string, unknown>, timeoutMs?: number): Promise<Reply> {
  return call(`${psp.url}/v1/refunds`, { method: 'POST', headers: { 'idempotency-key': key }, body, ...(timeoutMs !== undefined ? { timeoutMs } : {}) })
}

async function adminRefunds (psp: SandboxPsp, key: string): Promise<any[]> {
  return (await call(`${psp.url}/admin/refunds?idempotency_key=${encodeURIComponent(key)}`)).body.data
}

t.test('partial refunds up to the amount; a replay is the same refund; another body is refused', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: fastRetries })
  const made = await charge(psp, chargeBody('pm_card_visa', { amount: 1000 }))
  const first = await refund(psp, 'rk-1', { charge: made.body.id, amount: 600, reference: 're_a' })
  t.equal(first.status, 201)
  t.match(first.body, { object: 'refund', id: /^re_/, status: 'succeeded', amount: 600, currency: 'EUR', charge: made.body.id,
    reference: 're_a', payment_reference: made.body.reference, succeeded_at: Number })
  const replay = await refund(psp, 'rk-1', { charge: made.body.id, amount: 600, reference: 're_a' })
  t.equal(replay.status, 200)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.same(replay.body, first.body)
  t.equal((await refund(psp, 'rk-1', { charge: made.body.id, amount: 601, reference: 're_a' })).status, 422)
  const tooMuch = await refund(psp, 'rk-2', { charge: made.body.id, amount: 401, reference: 're_b' })
  t.match(tooMuch, { status: 400, body: { error: { code: 'refund_amount_too_large', param: 'amount' } } })
  t.equal((await refund(psp, 'rk-3', { charge: made.body.id, amount: 400, reference: 're_c' })).status, 201)
  t.same((await adminRefunds(psp, 'rk-1')).map((r) => r.id), [first.body.id], 'one refund for the key')
  t.same((await call(`${psp.url}/v1/refunds?idempotency_key=rk-1`)).body.data, [first.body])
  t.same((await call(`${psp.url}/v1/refunds/${first.body.id}`)).body, first.body)
  await receiver.waitFor((r) => r.filter((hook) => hook.event.type === 'refund.succeeded').length === 2, 'two refund.succeeded events')
  const hook = receiver.received.find((h) => h.event.data.object.id === first.body.id)!
  t.ok(hook.path.endsWith(`/${made.body.reference}`), 'posted to the charge\'s reference')
  t.match((await stats(psp)), { refunds: { total: 2, succeeded: 2 }, keysWithMultipleRefunds: 0 })
})

t.test('only a succeeded charge is refunded; unknown charges are missing', async (t) => {
  const psp = await startPsp(t)
  const declined = await charge(psp, chargeBody('pm_card_declined'))
  t.match(await refund(psp, 'rk-d', { charge: declined.body.id, amount: 1, reference: 're_d' }),
    { status: 400, body: { error: { code: 'charge_not_refundable' } } })
  t.match(await refund(psp, 'rk-u', { charge: 'ch_nope', amount: 1, reference: 're_u' }), { status: 404 })
  t.match(await refund(psp, 'rk-x', { charge: declined.body.id, amount: 1, reference: 're_x', extra: 1 }),
    { status: 400, body: { error: { code: 'parameter_unknown' } } })
  t.equal((await call(`${psp.url}/v1/refunds`, { method: 'POST', body: { charge: declined.body.id, amount: 1, reference: 're_y' } })).status, 400, 'no key')
})

t.test('racing refunds of one charge never exceed its amount', async (t) => {
  const psp = await startPsp(t)
  const made = await charge(psp, chargeBody('pm_card_visa', { amount: 1000 }))
  const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => refund(psp, `race-${i}`, { charge: made.body.id, amount: 300, reference: `re_r${i}` })))
  t.same(answers.map((a) => a.status).sort(), [201, 201, 201, 400, 400])
})

t.test('outcomes by token: failing, async, async failing', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, asyncDelayMs: 50 }, limits: fastRetries })
  const failing = await charge(psp, chargeBody('pm_card_refund_fails', { amount: 500 }))
  const failed = await refund(psp, 'f-1', { charge: failing.body.id, amount: 500, reference: 're_f1' })
  t.match(failed.body, { status: 'failed', failure_code: 'expired_or_canceled_card' })
  t.equal((await refund(psp, 'f-2', { charge: failing.body.id, amount: 500, reference: 're_f2' })).status, 201, 'a failed refund gives the amount back')
  const async = await charge(psp, chargeBody('pm_card_refund_async', { amount: 500 }))
  const pending = await refund(psp, 'a-1', { charge: async.body.id, amount: 200, reference: 're_a1' })
  t.equal(pending.body.status, 'pending')
  const asyncFails = await charge(psp, chargeBody('pm_card_refund_async_fails', { amount: 500 }))
  const pending2 = await refund(psp, 'a-2', { charge: asyncFails.body.id, amount: 200, reference: 're_a2' })
  await eventually(async () => (await call(`${psp.url}/v1/refunds/${pending.body.id}`)).body.status === 'succeeded' || undefined, 'the async refund to succeed')
  await eventually(async () => (await call(`${psp.url}/v1/refunds/${pending2.body.id}`)).body.status === 'failed' || undefined, 'the async refund to fail')
  await receiver.waitFor((r) => r.some((h) => h.event.type === 'refund.failed' && h.event.data.object.id === pending2.body.id) &&
    r.some((h) => h.event.type === 'refund.succeeded' && h.event.data.object.id === pending.body.id), 'the async outcomes\' events')
  t.ok(receiver.received.some((h) => h.event.type === 'refund.pending' && h.event.data.object.id === pending.body.id), 'refund.pending first')
})

t.test('5xx once and answer lost: the retry with the key gets the one refund', async (t) => {
  const psp = await startPsp(t, { runtime: { timeoutHoldMs: 200 } })
  const once = await charge(psp, chargeBody('pm_card_refund_5xx_once', { amount: 500 }))
  t.equal((await refund(psp, 'x-1', { charge: once.body.id, amount: 100, reference: 're_x1' })).status, 500)
  t.same(await adminRefunds(psp, 'x-1'), [], 'nothing refunded')
  t.equal((await refund(psp, 'x-1', { charge: once.body.id, amount: 100, reference: 're_x1' })).status, 201)
  const lost = await charge(psp, chargeBody('pm_card_refund_timeout', { amount: 500 }))
  await t.rejects(refund(psp, 'x-2', { charge: lost.body.id, amount: 100, reference: 're_x2' }), 'the answer never comes')
  const retry = await refund(psp, 'x-2', { charge: lost.body.id, amount: 100, reference: 're_x2' })
  t.equal(retry.status, 200)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.equal((await adminRefunds(psp, 'x-2')).length, 1, 'one refund for the key')
})
