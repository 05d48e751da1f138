// Refunds (issue #14) through the whole stack: POST /payments/{id}/refunds on the node, its change
// event through Kafka to the processor, the sandbox PSP's refund (idempotency key derived from the
// refund id), its outcome back on the node (the processor's answer or the PSP's refund webhook),
// and Postgres. Full and partial refunds, the amount never exceeded (also by racing requests),
// idempotent replays, refusals, PSP 5xx and lost answers retried into one PSP refund, and a refund
// failed at the PSP giving its amount back.

import t from 'tap'
import { call, createPayment, eventually, getPayment, getRefund, internalPaymentPath, newCheckoutId, refundPayment, type ApiResponse } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches, pspRefunds, refundSettles } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

/** A payment of `amount` with this card, once it has succeeded. */
async function succeeded (paymentMethod: string, amount = 1999): Promise<string> {
  const id = await createWith(paymentMethod, 'rf', amount)
  const node = await nodeReaches(id, settleDeadlineMs)
  if (node.status !== 'succeeded') throw new Error(`${id} ended ${node.status}`)
  return id
}

/** A refund request as a client sends it: retried with the same key while the payment is busy (409 in use). */
async function refund (id: string, idempotencyKey: string | undefined, body: unknown = {}): Promise<ApiResponse> {
  for (let attempt = 0; ; attempt++) {
    const res = await refundPayment(stack.publicUrl, key, id, idempotencyKey, body)
    if (res.status !== 409 || res.body?.code !== 'idempotency_key_in_use' || attempt >= 20) return res
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Node, Postgres and PSP agree on every refund of the payment; returns the node's payment. */
async function agreeEverywhere (t: any, id: string): Promise<any> {
  const node = (await call(`${stack.publicUrl}/payments/${id}`, { headers: { authorization: `Bearer ${key}` } })).body
  const row = await postgresReaches(id, node.version, settleDeadlineMs)
  t.equal(Number(row.amount_refunded), node.amount_refunded, `${id}: amount_refunded in Postgres = node`)
  const { rows } = await db().query('SELECT refund_id, amount, status, psp_reference FROM refunds WHERE checkout_id = $1', [id])
  t.equal(rows.length, node.refunds.length, `${id}: every refund in Postgres`)
  for (const refund of node.refunds) {
    const projected = rows.find((r: any) => r.refund_id === refund.id)
    t.match(projected, { status: refund.status, amount: String(refund.amount) }, `${refund.id}: Postgres = node`)
    const atPsp = await pspRefunds(refund.id)
    if (refund.status === 'succeeded') {
      t.equal(atPsp.length, 1, `${refund.id}: one PSP refund`)
      t.match(atPsp[0], { status: 'succeeded', amount: refund.amount, id: refund.psp_reference }, `${refund.id}: PSP = node`)
    } else {
      t.ok(atPsp.length <= 1, `${refund.id}: at most one PSP refund`)
      if (atPsp.length === 1) t.equal(atPsp[0].status, refund.status, `${refund.id}: PSP = node`)
    }
  }
  return node
}

t.test('a full refund: 202 pending, then succeeded on the node, in Postgres and at the PSP; the long-poll is woken', async (t) => {
  const id = await succeeded('pm_card_visa')
  const before = (await getPayment(stack.publicUrl, key, id)).body
  t.match(before, { status: 'succeeded', amount_refunded: 0, refunds: [] })
  const created = await refund(id, 'full-1')
  t.equal(created.status, 202)
  t.match(created.body, { id: /^re_/, object: 'refund', checkout_id: id, amount: 1999, currency: 'EUR', status: 'pending' })
  const polled = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${before.version + 1}`)
  const settled = await refundSettles(id, created.body.id, settleDeadlineMs)
  t.match(settled, { status: 'succeeded', psp_reference: /^re_/ })
  const woken = await polled
  t.ok(woken.body.version > before.version + 1, 'the long-poll was woken by the refund\'s outcome')
  const node = await agreeEverywhere(t, id)
  t.match(node, { status: 'succeeded', amount_refunded: 1999, refunds: [{ id: created.body.id, status: 'succeeded' }] })
  t.match((await getRefund(stack.publicUrl, key, id, created.body.id)).body, { id: created.body.id, status: 'succeeded', amount: 1999 })
  const more = await refund(id, 'full-2', { amount: 1 })
  t.equal(more.status, 409)
  t.match(more.headers['content-type'], /^application\/problem\+json/)
  t.match(more.body, { code: 'refund_amount_exceeds_available', amount_available: 0 })
})

t.test('two partial refunds; a third past what is left is refused and stores nothing', async (t) => {
  const id = await succeeded('pm_card_visa')
  const first = await refund(id, 'part-1', { amount: 500, reason: 'one item returned' })
  const second = await refund(id, 'part-2', { amount: 700 })
  t.equal(first.status, 202)
  t.equal(second.status, 202)
  t.equal(first.body.reason, 'one item returned')
  const over = await refund(id, 'part-3', { amount: 800 })
  t.equal(over.status, 409)
  t.match(over.body, { code: 'refund_amount_exceeds_available', amount_available: 799, currency: 'EUR' })
  await refundSettles(id, first.body.id, settleDeadlineMs)
  await refundSettles(id, second.body.id, settleDeadlineMs)
  const node = await agreeEverywhere(t, id)
  t.equal(node.amount_refunded, 1200)
  t.equal(node.refunds.length, 2, 'the refused one is stored nowhere')
  const rest = await refund(id, 'part-4')
  t.match(rest, { status: 202, body: { amount: 799 } }, 'no amount: what is left')
})

t.test('racing refunds that together exceed the amount: exactly the ones that fit are accepted', async (t) => {
  const id = await succeeded('pm_card_visa', 1000)
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => refund(id, `race-${i}`, { amount: 300 })))
  const accepted = answers.filter((a) => a.status === 202)
  const refused = answers.filter((a) => a.status !== 202)
  t.equal(accepted.length, 3, '3 × 300 fit in 1000')
  t.same(refused.map((a) => a.body.code), Array(3).fill('refund_amount_exceeds_available'))
  for (const a of accepted) await refundSettles(id, a.body.id, settleDeadlineMs)
  const node = await agreeEverywhere(t, id)
  t.equal(node.amount_refunded, 900)
})

t.test('idempotency: the same key and body replay the refund; another body is 409; no key is 400', async (t) => {
  const id = await succeeded('pm_card_visa')
  const first = await refund(id, 'idem-1', { amount: 100 })
  t.equal(first.status, 202)
  const replay = await refund(id, 'idem-1', { amount: 100 })
  t.equal(replay.status, 200)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal(replay.body.id, first.body.id, 'the same refund')
  const reuse = await refund(id, 'idem-1', { amount: 101 })
  t.match(reuse, { status: 409, body: { code: 'idempotency_key_reuse' } })
  t.match(await refund(id, undefined, { amount: 100 }), { status: 400, body: { code: 'idempotency_key_missing' } })
  t.match(await refund(id, 'idem-2', { amount: 0 }), { status: 400, body: { code: 'validation_failed' } })
  t.match(await refund(id, 'idem-3', { amount: 100, currency: 'EUR' }), { status: 400, body: { code: 'validation_failed' } })
  await refundSettles(id, first.body.id, settleDeadlineMs)
  const node = await agreeEverywhere(t, id)
  t.equal(node.refunds.length, 1)
  t.equal((await pspRefunds(first.body.id)).length, 1)
})

t.test('refused: a payment that did not succeed (409), another merchant\'s or an unknown one (404), an unknown refund (404)', async (t) => {
  const declined = await createWith('pm_card_declined', 'rf')
  t.equal((await nodeReaches(declined, settleDeadlineMs)).status, 'failed')
  t.match(await refund(declined, 'nope-1'), { status: 409, body: { code: 'payment_not_refundable', current_status: 'failed' } })
  const id = await succeeded('pm_card_visa')
  const other = await refundPayment(stack.publicUrl, stack.apiKeys.merchant_other, id, 'nope-2', {})
  t.match(other, { status: 404, body: { code: 'payment_not_found' } })
  t.match(await refund(newCheckoutId('rf'), 'nope-3'), { status: 404, body: { code: 'payment_not_found' } })
  t.match(await getRefund(stack.publicUrl, key, id, 're_unknown'), { status: 404, body: { code: 'refund_not_found' } })
  t.same((await getPayment(stack.publicUrl, key, id)).body.refunds, [], 'nothing stored')
  const pending = newCheckoutId('rf')
  t.equal((await createPayment(stack.publicUrl, key, pending, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_requires_action' })).status, 202)
  await nodeReaches(pending, settleDeadlineMs, new Set(['requires_action']))
  t.match(await refund(pending, 'nope-4'), { status: 409, body: { code: 'payment_not_refundable', current_status: 'requires_action' } })
})

t.test('PSP 5xx and a lost answer during a refund: retried with the same key, one PSP refund', async (t) => {
  for (const method of ['pm_card_refund_5xx_once', 'pm_card_refund_timeout']) {
    const id = await succeeded(method)
    const created = await refund(id, `retry-${method}`, { amount: 999 })
    t.equal(created.status, 202)
    const settled = await refundSettles(id, created.body.id, settleDeadlineMs)
    t.equal(settled.status, 'succeeded', `${method}: succeeded after a retry`)
    t.equal((await pspRefunds(created.body.id)).length, 1, `${method}: one PSP refund for the refund id`)
    // The attempt log is written in batches: wait for the row of the attempt that went through.
    const rows = await eventually(async () => {
      const { rows } = await db().query('SELECT attempt, outcome FROM psp_attempts WHERE idempotency_key = $1 ORDER BY attempt',
        [`refund_${created.body.id}`])
      return rows.at(-1)?.outcome === 'refund_succeeded' ? rows : undefined
    }, settleDeadlineMs, `${method}: the psp_attempts rows`)
    t.ok(rows.length >= 2 && rows[0].outcome === 'error', `${method}: the first attempt failed, a retry went through (${rows.map((r: any) => r.outcome).join(', ')})`)
    await agreeEverywhere(t, id)
  }
})

t.test('a refund failed at the PSP is failed on the node and its amount is available again; an async one settles by webhook', async (t) => {
  const failing = await succeeded('pm_card_refund_fails')
  const created = await refund(failing, 'fail-1')
  t.equal(created.status, 202)
  const failed = await refundSettles(failing, created.body.id, settleDeadlineMs)
  t.match(failed, { status: 'failed', failure_code: 'expired_or_canceled_card' })
  const node = await agreeEverywhere(t, failing)
  t.equal(node.amount_refunded, 0)
  const again = await refund(failing, 'fail-2')
  t.match(again, { status: 202, body: { amount: 1999 } }, 'the whole amount can be asked for again')
  await refundSettles(failing, again.body.id, settleDeadlineMs)

  const async = await succeeded('pm_card_refund_async')
  const pending = await refund(async, 'async-1', { amount: 1000 })
  t.equal(pending.status, 202)
  const settled = await refundSettles(async, pending.body.id, settleDeadlineMs)
  t.equal(settled.status, 'succeeded', 'the PSP\'s refund.succeeded webhook settled it')
  await agreeEverywhere(t, async)
  const { rows } = await db().query("SELECT type, applied FROM webhooks WHERE checkout_id = $1 AND type LIKE 'refund.%'", [async])
  t.ok(rows.some((r: any) => r.type === 'refund.succeeded' && r.applied), 'the applied webhook is recorded in Postgres')
})

t.test('refund outcomes on the internal API: only the processor, a success only with the PSP refund', async (t) => {
  // pm_card_refund_async: the refund stays pending at the PSP for its async delay, so nothing of
  // the processor's races these calls before they are checked.
  const id = await succeeded('pm_card_refund_async')
  const created = await refund(id, 'internal-1', { amount: 100 })
  t.equal(created.status, 202)
  const path = `${stack.internalUrl}${internalPaymentPath(id)}/refunds/${created.body.id}/transitions`
  const move = (token: string | undefined, body: unknown): Promise<ApiResponse> => call(path, {
    method: 'POST',
    headers: { 'x-payment-checkout-id': id, 'content-type': 'application/json', ...(token !== undefined ? { 'x-ringpay-internal-token': token } : {}) },
    body: JSON.stringify(body),
  })
  t.match(await move(undefined, { to: 'failed' }), { status: 401, body: { code: 'internal_unauthorized' } })
  t.match(await move(stack.internalTokens.ops, { to: 'failed' }), { status: 403, body: { code: 'internal_forbidden' } })
  t.match(await move(stack.internalTokens.audit, { to: 'failed' }), { status: 403, body: { code: 'internal_forbidden' } })
  t.match(await move(stack.internalTokens.processor, { to: 'succeeded' }), { status: 400, body: { code: 'validation_failed' } })
  t.match(await move(stack.internalTokens.processor, { to: 'pending' }), { status: 400, body: { code: 'validation_failed' } })
  const node = (await getPayment(stack.publicUrl, key, id)).body
  t.equal(node.refunds[0].status, 'pending', 'nothing moved the refund')
  t.equal((await refundSettles(id, created.body.id, settleDeadlineMs)).status, 'succeeded', 'the PSP\'s webhook settles it')
})
