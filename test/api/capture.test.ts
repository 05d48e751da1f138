// Manual capture (issue #14) through the whole stack: `capture_method: "manual"` at create → the
// sandbox PSP only authorizes (`capture: false`) → `requires_capture` on the node, in Postgres and
// at the PSP; POST /payments/{id}/capture on the node, its change event through Kafka to the
// processor, the PSP's capture (idempotency key `capture_<checkout id>`), `succeeded` with
// `amount_captured` everywhere. Also: retries of the capture, refusals, cancel (a void at the PSP)
// and capture racing it, the authorization's window, refunds bounded by the captured amount, and
// PSP 5xx and a lost answer during the capture still ending captured once.

import t from 'tap'
import { call, createPayment, eventually, getPayment, newCheckoutId, refundPayment, testMerchantId, type ApiResponse } from '../helpers/api.ts'
import { captureIdempotencyKey } from '../../processor/psp/types.ts'
import { closeDb, db, nodeReaches, pspCharges, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

const authorized = new Set(['requires_capture', 'succeeded', 'failed', 'canceled'])

/** A manual-capture payment of `amount` with this card, once the PSP authorized it (requires_capture). */
async function authorizedPayment (paymentMethod = 'pm_card_visa', amount = 1999): Promise<{ id: string, payment: any }> {
  const id = newCheckoutId('cap')
  const res = await createPayment(stack.publicUrl, key, id, { amount, currency: 'EUR', payment_method: paymentMethod, capture_method: 'manual' })
  if (res.status !== 202) throw new Error(`create ${id} answered ${res.status}: ${res.text}`)
  const payment = await nodeReaches(id, settleDeadlineMs, authorized)
  if (payment.status !== 'requires_capture') throw new Error(`${id} ended ${payment.status}, not requires_capture`)
  return { id, payment }
}

/** POST /payments/{id}/capture as a client sends it: retried while the payment is busy (409 in use). */
async function capture (id: string, body?: unknown): Promise<ApiResponse> {
  for (let attempt = 0; ; attempt++) {
    const res = await call(`${stack.publicUrl}/payments/${id}/capture`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    if (res.status !== 409 || res.body?.code !== 'idempotency_key_in_use' || attempt >= 20) return res
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function cancel (id: string): Promise<ApiResponse> {
  return call(`${stack.publicUrl}/payments/${id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${key}` } })
}

/** The PSP's one charge for the payment (its idempotency key is the checkout id). */
async function pspCharge (t: any, id: string): Promise<any> {
  const charges = await pspCharges(id)
  t.equal(charges.length, 1, `${id}: one PSP charge`)
  return charges[0]
}

/** The PSP attempts the processor recorded under the capture's key. */
async function captureAttempts (id: string): Promise<any[]> {
  const { rows } = await db().query(
    'SELECT attempt, outcome, error_code FROM psp_attempts WHERE checkout_id = $1 AND idempotency_key = $2 ORDER BY attempt', [id, captureIdempotencyKey(testMerchantId, id)])
  return rows
}

t.test('create manual → requires_capture → a partial capture → succeeded with amount_captured; node = Postgres = PSP', async (t) => {
  const { id, payment } = await authorizedPayment('pm_card_visa', 1999)
  t.match(payment, { capture_method: 'manual', amount_capturable: 1999, amount_captured: 0, psp_reference: /^ch_/ })
  t.notOk('amount_to_capture' in payment, 'no capture asked for yet')
  const authorization = await pspCharge(t, id)
  t.match(authorization, { status: 'requires_capture', capture_method: 'manual', amount: 1999, fee: 0, id: payment.psp_reference })
  t.notOk('amount_captured' in authorization, 'the PSP captured nothing yet')
  const row = await postgresReaches(id, payment.version, settleDeadlineMs)
  t.match(row, { status: 'requires_capture', capture_method: 'manual', amount_captured: '0' })

  const polled = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${payment.version + 1}`)
  const asked = await capture(id, { amount: 1500 })
  t.equal(asked.status, 202)
  t.match(asked.body, { status: 'requires_capture', amount_to_capture: 1500, amount_capturable: 0, amount_captured: 0, version: payment.version + 1 })
  const woken = await polled
  t.match(woken.body, { status: 'succeeded', amount_captured: 1500 }, 'the long-poll is woken by the capture\'s outcome')

  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(node, { status: 'succeeded', amount: 1999, amount_captured: 1500, amount_to_capture: 1500, amount_capturable: 0, psp_reference: payment.psp_reference })
  const projected = await postgresReaches(id, node.version, settleDeadlineMs)
  t.match(projected, { status: 'succeeded', amount: '1999', amount_captured: '1500', capture_method: 'manual', psp_reference: payment.psp_reference })
  const captured = await pspCharge(t, id)
  t.match(captured, { status: 'succeeded', amount: 1999, amount_captured: 1500, capture_idempotency_key: captureIdempotencyKey(testMerchantId, id), settled_on: /^\d{4}-/ })
  t.equal(captured.net + captured.fee, 1500, 'the fee is on what was captured')
  // The processor's attempt row may follow the PSP's webhook, which can settle the payment first.
  const attempts = await eventually(async () => {
    const rows = await captureAttempts(id)
    return rows.length > 0 ? rows : undefined
  }, settleDeadlineMs, `${id}'s capture attempt`)
  t.match(attempts, [{ attempt: 1, outcome: 'capture_captured' }], 'one attempt, captured')

  const again = await capture(id, { amount: 1500 })
  t.equal(again.status, 200, 'a retried capture answers the payment as it is')
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.match(again.body, { status: 'succeeded', amount_captured: 1500, version: node.version })
  t.equal((await capture(id)).status, 200, 'so does one without an amount')
  const other = await capture(id, { amount: 1000 })
  t.equal(other.status, 409)
  t.match(other.body, { code: 'payment_not_capturable', amount_to_capture: 1500, current_status: 'succeeded' })
})

t.test('an empty body captures the whole authorization', async (t) => {
  const { id } = await authorizedPayment('pm_card_mastercard', 4200)
  const asked = await capture(id)
  t.equal(asked.status, 202)
  t.match(asked.body, { amount_to_capture: 4200 })
  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(node, { status: 'succeeded', amount_captured: 4200 })
  t.match(await pspCharge(t, id), { status: 'succeeded', amount_captured: 4200 })
})

t.test('only a manual payment at requires_capture is captured, for at most what was authorized', async (t) => {
  const automatic = newCheckoutId('cap')
  t.equal((await createPayment(stack.publicUrl, key, automatic)).status, 202)
  const done = await nodeReaches(automatic, settleDeadlineMs)
  t.match(done, { status: 'succeeded', capture_method: 'automatic', amount_captured: 1999 })
  const refused = await capture(automatic)
  t.equal(refused.status, 409)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.match(refused.body, { code: 'payment_not_capturable', current_status: 'succeeded' })

  const { id, payment } = await authorizedPayment()
  const tooMuch = await capture(id, { amount: 2000 })
  t.equal(tooMuch.status, 409)
  t.match(tooMuch.body, { code: 'capture_amount_exceeds_authorized', amount_capturable: 1999, currency: 'EUR' })
  t.match((await capture(id, { amount: 'all' })).body, { code: 'validation_failed' })
  t.match((await capture(id, { amount: 5, extra: true })).body, { code: 'validation_failed' })
  t.equal((await call(`${stack.publicUrl}/payments/${id}/capture`, { headers: { authorization: `Bearer ${key}` } })).status, 405)
  t.equal((await capture(newCheckoutId('cap'))).status, 404)
  const unchanged = (await getPayment(stack.publicUrl, key, id)).body
  t.match(unchanged, { status: 'requires_capture', version: payment.version }, 'refusals change nothing')

  const replay = await createPayment(stack.publicUrl, key, id, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa', capture_method: 'manual' })
  t.equal(replay.status, 200, 'the same create is replayed')
  const otherMethod = await createPayment(stack.publicUrl, key, id, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa' })
  t.match(otherMethod.body, { code: 'idempotency_key_reuse' }, 'capture_method is part of the create\'s idempotency')
  t.match((await createPayment(stack.publicUrl, key, newCheckoutId('cap'), { ...{ amount: 1, currency: 'EUR', payment_method: 'pm_card_visa' }, capture_method: 'later' })).body,
    { code: 'validation_failed', errors: [{ field: 'capture_method' }] })
})

t.test('cancel at requires_capture: canceled, and the processor voids the authorization at the PSP; no capture after', async (t) => {
  const { id } = await authorizedPayment()
  const canceled = await cancel(id)
  t.equal(canceled.status, 200)
  t.match(canceled.body, { status: 'canceled', amount_captured: 0, amount_capturable: 0 })
  const voided = await eventually(async () => {
    const charge = (await pspCharges(id))[0]
    return charge?.status === 'canceled' ? charge : undefined
  }, settleDeadlineMs, `${id}'s authorization voided at the PSP`)
  t.notOk('amount_captured' in voided, 'nothing was captured')
  const refused = await capture(id)
  t.equal(refused.status, 409)
  t.match(refused.body, { code: 'payment_not_capturable', current_status: 'canceled' })
  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(await postgresReaches(id, node.version, settleDeadlineMs), { status: 'canceled', amount_captured: '0' })
})

t.test('capture racing cancel: exactly one wins, and the PSP agrees', async (t) => {
  const rounds = 4
  for (let round = 0; round < rounds; round++) {
    const { id } = await authorizedPayment()
    const [captured, canceled] = await Promise.all([capture(id, { amount: 700 }), cancel(id)])
    const winners = [captured.status === 202, canceled.status === 200].filter(Boolean).length
    t.equal(winners, 1, `${id}: one of capture (${captured.status}) and cancel (${canceled.status}) wins`)
    const node = await nodeReaches(id, settleDeadlineMs)
    if (captured.status === 202) {
      t.match(canceled.body, { code: 'payment_not_cancelable' })
      t.match(node, { status: 'succeeded', amount_captured: 700 })
      t.match(await pspCharge(t, id), { status: 'succeeded', amount_captured: 700 })
    } else {
      t.match(captured.body, { code: 'payment_not_capturable', current_status: 'canceled' })
      t.equal(node.status, 'canceled')
      await eventually(async () => ((await pspCharges(id))[0]?.status === 'canceled' ? true : undefined), settleDeadlineMs, `${id} voided at the PSP`)
    }
  }
})

t.test('an authorization not captured within its window is voided by the PSP: the payment ends canceled', async (t) => {
  // pm_card_authorization_expires: the sandbox voids its authorizations after 2 s (rules.ts). The
  // void may even beat the processor's record of the authorization: either way it ends canceled.
  const id = newCheckoutId('cap')
  const made = await createPayment(stack.publicUrl, key, id, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_authorization_expires', capture_method: 'manual' })
  t.equal(made.status, 202)
  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(node, { status: 'canceled', failure_code: 'authorization_expired', amount_captured: 0 })
  t.match(await pspCharge(t, id), { status: 'canceled', failure_code: 'authorization_expired' })
  t.match(await postgresReaches(id, node.version, settleDeadlineMs), { status: 'canceled', failure_code: 'authorization_expired' })
  t.match((await capture(id)).body, { code: 'payment_not_capturable' }, 'nothing left to capture')
})

t.test('refunds of a captured payment are bounded by amount_captured, not the authorized amount', async (t) => {
  const { id } = await authorizedPayment('pm_card_visa', 1999)
  t.equal((await capture(id, { amount: 1000 })).status, 202)
  await nodeReaches(id, settleDeadlineMs)
  const tooMuch = await refundPayment(stack.publicUrl, key, id, 'cap-r1', { amount: 1001 })
  t.equal(tooMuch.status, 409)
  t.match(tooMuch.body, { code: 'refund_amount_exceeds_available', amount_available: 1000 })
  const rest = await refundPayment(stack.publicUrl, key, id, 'cap-r2', {})
  t.equal(rest.status, 202)
  t.match(rest.body, { amount: 1000, status: 'pending' }, 'the rest of the refundable amount is the captured amount')
  const node = await eventually(async () => {
    const p = (await getPayment(stack.publicUrl, key, id)).body
    return p.amount_refunded === 1000 ? p : undefined
  }, settleDeadlineMs, `${id}'s refund to succeed`)
  t.match(node, { status: 'succeeded', amount_captured: 1000, amount_refunded: 1000 })
})

t.test('PSP 5xx and a lost answer during the capture: retried under the same key, captured once', async (t) => {
  for (const card of ['pm_card_capture_5xx_once', 'pm_card_capture_timeout']) {
    const { id } = await authorizedPayment(card, 3000)
    t.equal((await capture(id, { amount: 2500 })).status, 202)
    const node = await nodeReaches(id, settleDeadlineMs)
    t.match(node, { status: 'succeeded', amount_captured: 2500 }, `${card}: captured`)
    t.match(await pspCharge(t, id), { status: 'succeeded', amount_captured: 2500, capture_idempotency_key: captureIdempotencyKey(testMerchantId, id) })
    // The PSP's webhook may settle the payment first; the processor's own attempts end with the
    // answer it retried for (the lost answer: after its headers timeout).
    const attempts = await eventually(async () => {
      const rows = await captureAttempts(id)
      return rows.at(-1)?.outcome === 'capture_captured' ? rows : undefined
    }, settleDeadlineMs, `${id}'s capture attempts to end captured`)
    t.ok(attempts.length >= 2, `${card}: the capture was retried (${attempts.length} attempts)`)
    t.equal(attempts[0].outcome, 'error', `${card}: the first attempt failed`)
    t.equal(attempts.at(-1).outcome, 'capture_captured', `${card}: the last one captured`)
    t.match(await postgresReaches(id, node.version, settleDeadlineMs), { status: 'succeeded', amount_captured: '2500' })
  }
})
