// Every payment reaches a terminal state that matches the PSP, charged at most once, recorded in
// Postgres equal to its node: real nginx, nodes, relay, Kafka, processor, Postgres, sandbox PSP.

import t from 'tap'
import { signWebhook } from '../../lib/webhook-signature.ts'
import { call, eventually, getInternal } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches, pspCharges } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const terminalDeadlineMs = 30_000
t.teardown(closeDb)

/** PSP attempts as recorded, once the last one has an outcome (the attempt log is written in batches). */
async function attempts (checkoutId: string): Promise<Array<{ outcome: string, error_code: string | null }>> {
  return eventually(async () => {
    const { rows } = await db().query('SELECT outcome, error_code FROM psp_attempts WHERE checkout_id = $1 ORDER BY id', [checkoutId])
    return rows.length > 0 && rows.at(-1).outcome !== 'error' ? rows : undefined
  }, terminalDeadlineMs, `the PSP attempts of ${checkoutId}`)
}

async function assertSettled (t: any, checkoutId: string, status: string): Promise<any> {
  const node = await nodeReaches(checkoutId, terminalDeadlineMs, new Set([status, 'succeeded', 'failed', 'canceled', 'requires_action']))
  t.equal(node.status, status, `${checkoutId} is ${status} on its node`)
  const row = await postgresReaches(checkoutId, node.version, terminalDeadlineMs)
  t.equal(row.status, node.status, 'Postgres equals the node: status')
  t.equal(Number(row.version), node.version, 'Postgres equals the node: version')
  t.equal(Number(row.amount), node.amount, 'Postgres equals the node: amount')
  const charges = await pspCharges(checkoutId)
  t.equal(charges.length, 1, 'exactly one PSP charge')
  if (node.psp_reference !== undefined) t.equal(charges[0].id, node.psp_reference, 'the node knows the PSP charge')
  return node
}

t.test('a card that succeeds', async (t) => {
  const id = await createWith('pm_card_visa')
  await assertSettled(t, id, 'succeeded')
  t.same((await attempts(id)).map((a) => a.outcome), ['succeeded'])
})

t.test('a declined card fails with the PSP reason', async (t) => {
  const id = await createWith('pm_card_declined')
  const node = await assertSettled(t, id, 'failed')
  t.equal(node.failure_code, 'card_declined')
})

t.test('PSP 5xx then success: retried with the same key, one charge', async (t) => {
  const id = await createWith('pm_card_5xx_once')
  await assertSettled(t, id, 'succeeded')
  const outcomes = await attempts(id)
  t.ok(outcomes.length >= 2, `attempts: ${JSON.stringify(outcomes)}`)
  t.equal(outcomes[0]!.error_code, 'psp_unavailable')
  t.equal(outcomes.at(-1)!.outcome, 'succeeded')
})

t.test('PSP times out after charging: the retry finds the same charge', async (t) => {
  const id = await createWith('pm_card_timeout_after_charge')
  await assertSettled(t, id, 'succeeded')
  const outcomes = await attempts(id)
  t.equal(outcomes[0]!.error_code, 'psp_timeout', `attempts: ${JSON.stringify(outcomes)}`)
})

t.test('async completion arrives by webhook', async (t) => {
  const id = await createWith('pm_card_async')
  await assertSettled(t, id, 'succeeded')
  const { rows } = await db().query(
    `SELECT actor FROM payment_events WHERE checkout_id = $1 AND status = 'succeeded'`, [id])
  t.same(rows.map((r) => r.actor), ['webhook:sandbox'])
  const hooks = await db().query('SELECT type, applied FROM webhooks WHERE checkout_id = $1', [id])
  t.ok(hooks.rows.some((h) => h.type === 'charge.succeeded' && h.applied), 'the webhook is recorded in Postgres')
})

t.test('a card that needs customer action stops at requires_action', async (t) => {
  const id = await createWith('pm_card_requires_action')
  await assertSettled(t, id, 'requires_action')
})

function postWebhook (checkoutId: string, body: string, signature: string | undefined): ReturnType<typeof call> {
  return call(`${stack.publicUrl}/webhooks/psp/sandbox/${checkoutId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(signature !== undefined ? { 'ringpay-signature': signature } : {}) },
    body,
  })
}

function chargeEvent (eventId: string, type: string, charge: any): string {
  return JSON.stringify({ id: eventId, type, created: Math.floor(Date.now() / 1000), data: { object: charge } })
}

t.test('webhooks: bad, stale, replayed or missing signatures change nothing; duplicates and late events are harmless', async (t) => {
  const id = await createWith('pm_card_visa', 'hook')
  const settled = await assertSettled(t, id, 'succeeded')
  const [charge] = await pspCharges(id)
  const nowS = Math.floor(Date.now() / 1000)
  const late = chargeEvent(`evt_late_${id}`, 'charge.failed', { ...charge, status: 'failed', failure_code: 'card_declined' })
  for (const [what, signature] of [
    ['missing', undefined],
    ['wrong secret', signWebhook('not-the-secret-at-all', nowS, late)],
    ['stale', signWebhook(stack.psp.webhookSecret, nowS - 301, late)],
    ['malformed', 'v1=abc'],
  ] as const) {
    const res = await postWebhook(id, late, signature)
    t.equal(res.status, 401, what)
    t.equal(res.body.code, 'webhook_signature_invalid', what)
  }
  const signed = signWebhook(stack.psp.webhookSecret, nowS, late)
  const first = await postWebhook(id, late, signed)
  t.equal(first.status, 200)
  t.match(first.body, { received: true, duplicate: false, applied: false, note: 'terminal' })
  const again = await postWebhook(id, late, signed)
  t.match(again.body, { received: true, duplicate: true })
  // A captured signature replayed over another body (here: a success event) is refused.
  const forged = chargeEvent(`evt_forged_${id}`, 'charge.succeeded', { ...charge, amount: charge.amount + 100 })
  const replayed = await postWebhook(id, forged, signed)
  t.equal(replayed.status, 401, 'a signature replayed over another body')
  t.equal(replayed.body.code, 'webhook_signature_invalid')
  const after = (await getInternal(stack.internalUrl, id)).body
  t.equal(after.status, 'succeeded', 'a late failure never moves a succeeded payment')
  t.equal(after.version, settled.version, 'nothing changed')
  const wrongPath = await postWebhook(`${id}x`, late, signed)
  t.equal(wrongPath.status, 400, 'an event about another payment than its path')
  t.equal(wrongPath.body.code, 'validation_failed')
  const unknownId = `${id}-unknown`
  const unknown = chargeEvent(`evt_unknown_${id}`, 'charge.succeeded', { ...charge, reference: unknownId })
  const res = await postWebhook(unknownId, unknown, signWebhook(stack.psp.webhookSecret, nowS, unknown))
  t.equal(res.status, 404, 'an event for a payment we do not have')
  t.equal(res.body.code, 'payment_not_found')
})

t.test('a webhook for another amount changes nothing and flags the payment', async (t) => {
  const id = await createWith('pm_card_async', 'hook')
  // The node shows `processing` once a processor has claimed the payment, before its call to the
  // PSP: wait for the charge itself, not the claim (a bare read right after the claim found none).
  const charge = await eventually(async () => (await pspCharges(id))[0], terminalDeadlineMs, 'the PSP to hold the charge')
  const body = chargeEvent(`evt_amt_${id}`, 'charge.succeeded', { ...charge, status: 'succeeded', amount: charge.amount + 1 })
  const res = await postWebhook(id, body, signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), body))
  t.equal(res.status, 200)
  t.equal(res.body.applied, false)
  t.equal(res.body.note, 'amount_mismatch')
  const flagged = await eventually(async () => {
    const { rows } = await db().query('SELECT flagged_reason FROM payments WHERE checkout_id = $1', [id])
    return rows[0]?.flagged_reason ?? undefined
  }, terminalDeadlineMs, 'the payment to be flagged in Postgres')
  t.match(flagged, /disagrees/)
})
