// Manual capture at the sandbox PSP (issue #14): a charge made with `capture: false` is an
// authorization (requires_capture, no fee, not settled, charge.requires_capture event); POST
// /v1/charges/{id}/capture takes all or part of it (succeeded, amount_captured, fee on what was
// captured, settled that day for the captured amount), idempotent by its key; a cancel voids it;
// its window's end voids it too (authorization_expired, charge.canceled); faults as configured.

import t from 'tap'
import { adminCharges, call, charge, chargeBody, eventually, setConfig, startPsp, startReceiver, stats, tempDir } from './helpers.ts'

const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 4, webhookDeliveryTimeoutMs: 500 }

function captureCall (url: string, id: string, key: string, body?: unknown): ReturnType<typeof call> {
  return call(`${url}/v1/charges/${id}/capture`, { method: 'POST', headers: { 'idempotency-key': key }, ...(body !== undefined ? { body } : {}) })
}

function settlementRows (csv: string): string[][] {
  return csv.trim().split('\n').slice(1).map((line) => line.split(','))
}

t.test('authorize, capture in part: succeeded for the captured amount, settled for it; a repeat is the same capture', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: fastRetries })
  const authorized = await charge(psp, { ...chargeBody('pm_card_visa', { amount: 5000 }), capture: false } as never)
  t.equal(authorized.status, 201)
  t.match(authorized.body, { status: 'requires_capture', capture_method: 'manual', amount: 5000, fee: 0, net: 0, capture_before: Number })
  t.notOk(authorized.body.settled_on, 'an authorization is not settled')
  const today = new Date().toISOString().slice(0, 10)
  t.same(settlementRows((await call(`${psp.url}/v1/settlements/${today}.csv`)).text).filter((row) => row[1] === authorized.body.id), [],
    'an authorization never captured is not in the report')

  const captured = await captureCall(psp.url, authorized.body.id, 'cap-1', { amount: 3000 })
  t.equal(captured.status, 200)
  t.match(captured.body, { status: 'succeeded', amount: 5000, amount_captured: 3000, capture_idempotency_key: 'cap-1', settled_on: today })
  t.equal(captured.body.fee + captured.body.net, 3000, 'the fee is on what was captured')
  t.notOk('capture_before' in captured.body)
  const again = await captureCall(psp.url, authorized.body.id, 'cap-1', { amount: 3000 })
  t.equal(again.status, 200)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.same(again.body, captured.body, 'a retry with the key answers the same capture')
  t.equal((await captureCall(psp.url, authorized.body.id, 'cap-1', { amount: 2000 })).body.error.code, 'idempotency_key_mismatch', 'the key with another amount')
  const other = await captureCall(psp.url, authorized.body.id, 'cap-2')
  t.equal(other.status, 400)
  t.equal(other.body.error.code, 'charge_already_captured')
  t.match((await stats(psp)).charges, { succeeded: 1, requires_capture: 0 })

  const report = settlementRows((await call(`${psp.url}/v1/settlements/${today}.csv`)).text).find((row) => row[1] === authorized.body.id)
  t.ok(report !== undefined, 'a captured authorization settles')
  t.equal(report![4], '3000', 'for the captured amount, not the authorized one')
  t.equal(report![6], String(captured.body.fee))

  await receiver.waitFor((r) => r.some((hook) => hook.event.type === 'charge.succeeded'), 'the charge.succeeded event')
  const types = receiver.forReference(authorized.body.reference).map((hook) => hook.event.type)
  t.same(types.sort(), ['charge.requires_capture', 'charge.succeeded'])
  const capturedEvent = receiver.forReference(authorized.body.reference).find((hook) => hook.event.type === 'charge.succeeded')
  t.equal(capturedEvent!.event.data.object.amount_captured, 3000)

  const refund = await call(`${psp.url}/v1/refunds`, { method: 'POST', headers: { 'idempotency-key': 'r-1' }, body: { charge: authorized.body.id, amount: 3001, reference: 'r1' } })
  t.equal(refund.body?.error?.code, 'refund_amount_too_large', 'refunds are bounded by the captured amount')
})

t.test('capture false is part of the charge\'s idempotency; capturing what is not an authorization is refused', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody('pm_card_visa')
  const automatic = await charge(psp, body)
  t.equal(automatic.body.status, 'succeeded')
  t.notOk('capture_method' in automatic.body, 'the usual charge is unchanged')
  t.equal((await charge(psp, { ...body, capture: false } as never)).body.error.code, 'idempotency_key_mismatch')
  t.equal((await captureCall(psp.url, automatic.body.id, 'k')).body.error.code, 'charge_not_capturable')
  t.equal((await charge(psp, { ...chargeBody(), capture: 'no' } as never)).body.error.code, 'parameter_invalid')
  const declined = await charge(psp, { ...chargeBody('pm_card_declined'), capture: false } as never)
  t.equal(declined.body.status, 'failed', 'a declined authorization fails like a charge')
  const authorized = await charge(psp, { ...chargeBody(), capture: false } as never)
  t.equal((await captureCall(psp.url, authorized.body.id, 'k', { amount: 2000 })).body.error.code, 'capture_amount_too_large')
  t.equal((await captureCall(psp.url, authorized.body.id, 'k', { amount: 0 })).body.error.code, 'amount_invalid')
  t.equal((await captureCall(psp.url, authorized.body.id, 'k', { other: 1 })).body.error.code, 'parameter_unknown')
  t.equal((await call(`${psp.url}/v1/charges/${authorized.body.id}/capture`, { method: 'POST' })).body.error.code, 'idempotency_key_missing')
  t.equal((await captureCall(psp.url, 'ch_nothing', 'k')).status, 404)
  t.equal((await call(`${psp.url}/v1/charges/${authorized.body.id}`)).body.status, 'requires_capture', 'refusals change nothing')
})

t.test('a cancel voids an authorization; it can no longer be captured', async (t) => {
  const psp = await startPsp(t)
  const authorized = await charge(psp, { ...chargeBody(), capture: false } as never)
  const voided = await call(`${psp.url}/v1/charges/${authorized.body.id}/cancel`, { method: 'POST' })
  t.match(voided.body, { status: 'canceled', canceled_at: Number, fee: 0 })
  t.notOk('capture_before' in voided.body)
  t.equal((await captureCall(psp.url, authorized.body.id, 'k')).body.error.code, 'charge_not_capturable')
  t.match((await stats(psp)).charges, { requires_capture: 0, canceled: 1 })
})

t.test('an authorization not captured within its window is voided (configurable), durably with its event', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const dataDir = tempDir()
  const first = await startPsp(t, { dataDir, runtime: { webhookBaseUrl: url }, limits: fastRetries })
  await setConfig(first, { authorizationWindowMs: 300 })
  const authorized = await charge(first, { ...chargeBody(), capture: false } as never)
  const captured = await charge(first, { ...chargeBody(), capture: false } as never)
  t.equal((await captureCall(first.url, captured.body.id, 'k')).status, 200, 'captured within the window')
  const expired = await eventually(async () => {
    const found = (await call(`${first.url}/v1/charges/${authorized.body.id}`)).body
    return found.status === 'canceled' ? found : undefined
  }, 'the authorization to expire')
  t.match(expired, { status: 'canceled', failure_code: 'authorization_expired' })
  t.equal((await call(`${first.url}/v1/charges/${captured.body.id}`)).body.status, 'succeeded', 'a captured charge is never voided')
  t.equal((await captureCall(first.url, authorized.body.id, 'k2')).body.error.code, 'charge_not_capturable')
  await receiver.waitFor((r) => r.some((hook) => hook.event.type === 'charge.canceled'), 'the charge.canceled event')

  // The schedule is durable: an authorization pending at a restart is voided after it.
  const late = await charge(first, { ...chargeBody(), capture: false } as never)
  await first.stop()
  const second = await startPsp(t, { dataDir })
  await eventually(async () => ((await call(`${second.url}/v1/charges/${late.body.id}`)).body.status === 'canceled' ? true : undefined), 'expiry after a restart')
  t.equal((await adminCharges(second, late.body.reference)).length, 1)
})

t.test('a token\'s capture faults: 500 once without capturing, then captured; a held answer after capturing', async (t) => {
  const psp = await startPsp(t, { runtime: { timeoutHoldMs: 200 } })
  const once = await charge(psp, { ...chargeBody('pm_card_capture_5xx_once'), capture: false } as never)
  t.equal((await captureCall(psp.url, once.body.id, 'k5')).status, 500)
  t.equal((await call(`${psp.url}/v1/charges/${once.body.id}`)).body.status, 'requires_capture', 'nothing captured')
  t.equal((await captureCall(psp.url, once.body.id, 'k5')).body.status, 'succeeded')
  const held = await charge(psp, { ...chargeBody('pm_card_capture_timeout'), capture: false } as never)
  await t.rejects(call(`${psp.url}/v1/charges/${held.body.id}/capture`, { method: 'POST', headers: { 'idempotency-key': 'kt' }, timeoutMs: 5_000 }))
  t.equal((await call(`${psp.url}/v1/charges/${held.body.id}`)).body.status, 'succeeded', 'captured before the answer was lost')
  const retried = await captureCall(psp.url, held.body.id, 'kt')
  t.equal(retried.headers['idempotent-replayed'], 'true')
  t.equal(retried.body.amount_captured, 1999)
})
