// Checkout ids are per merchant (issue #17 part 5), end to end through the shared stack: the same
// checkout id used by two merchants is two payments, each charged once at the PSP (under its own
// idempotency key), each terminal and right in Postgres, each seen only by its merchant; another
// merchant's id answers exactly what an unknown id answers; a PSP webhook reaches its merchant's
// payment only. Real nginx (routing by the checkout id alone), nodes, Kafka, processor, Postgres
// and sandbox PSP.

import { request } from 'undici'
import t from 'tap'
import { checkSystemOutcome } from '../../bench/lib/system-outcome.ts'
import { signWebhook } from '../../lib/webhook-signature.ts'
import { call, cancelPayment, createPayment, getPayment, newCheckoutId, refundPayment, type ApiResponse } from '../helpers/api.ts'
import { closeDb, db, nodeReaches, postgresReaches, pspAdmin, pspCharges } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const demo = { id: 'merchant_demo', key: stack.apiKeys.merchant_demo }
const other = { id: 'merchant_other', key: stack.apiKeys.merchant_other }
const settleDeadlineMs = 30_000
const requiresAction = new Set(['requires_action'])
t.teardown(closeDb)

async function create (merchant: { key: string }, id: string, body: Record<string, unknown>): Promise<ApiResponse> {
  return createPayment(stack.publicUrl, merchant.key, id, { currency: 'EUR', description: 'scoped ids', ...body } as never)
}

t.test('two merchants, one checkout id: two payments, each charged once, each terminal and right in Postgres, each its own', async (t) => {
  const id = newCheckoutId('scoped')
  const a = await create(demo, id, { amount: 1999, payment_method: 'pm_card_visa' })
  const b = await create(other, id, { amount: 2500, payment_method: 'pm_card_visa' })
  t.equal(a.status, 202, 'merchant A: accepted')
  t.equal(b.status, 202, 'merchant B: accepted too, not a conflict')
  for (const [merchant, amount] of [[demo, 1999], [other, 2500]] as const) {
    const node = await nodeReaches(id, settleDeadlineMs, undefined, merchant.id)
    t.match(node, { merchant_id: merchant.id, checkout_id: id, status: 'succeeded', amount }, `${merchant.id}: succeeded on its node`)
    const charges = await pspCharges(id, merchant.id)
    t.equal(charges.length, 1, `${merchant.id}: exactly one PSP charge under its key`)
    t.match(charges[0], { id: node.psp_reference, amount, merchant_id: merchant.id, reference: id })
    const row = await postgresReaches(id, node.version, settleDeadlineMs, merchant.id)
    t.match(row, { merchant_id: merchant.id, checkout_id: id, status: 'succeeded', amount: String(amount), psp_reference: node.psp_reference })
    const seen = await getPayment(stack.publicUrl, merchant.key, id)
    t.match(seen.body, { checkout_id: id, amount, status: 'succeeded', psp_reference: node.psp_reference }, `${merchant.id} sees its own`)
  }
  t.same((await pspAdmin(`/admin/charges?idempotency_key=${id}`)).body.data, [], 'no charge under the bare checkout id')
  const { rows } = await db().query('SELECT merchant_id FROM payments WHERE checkout_id = $1 ORDER BY merchant_id', [id])
  t.same(rows.map((r) => r.merchant_id), ['merchant_demo', 'merchant_other'], 'two rows in Postgres')
  const events = await db().query('SELECT DISTINCT merchant_id FROM payment_events WHERE checkout_id = $1 ORDER BY merchant_id', [id])
  t.same(events.rows.map((r) => r.merchant_id), ['merchant_demo', 'merchant_other'], 'each payment\'s events name its merchant')
  // The end-to-end outcome check, per merchant: found, on one node, matching the PSP, one charge.
  for (const merchant of [demo, other]) {
    const report = await checkSystemOutcome({ system: stack, merchantId: merchant.id, acked: [id], settleDeadlineMs: settleDeadlineMs })
    t.match(report, { passed: true, checked: 1, doubleCharges: 0, nodeVsPsp: 0, nodeVsPostgres: 0 }, `${merchant.id}: outcome check`)
  }
})

/** What a merchant's request answers, minus what differs per request. */
function answerOf (res: ApiResponse): unknown {
  return { status: res.status, type: res.body?.type, title: res.body?.title, code: res.body?.code, detail: res.body?.detail }
}

t.test('another merchant\'s checkout id answers exactly what an unknown one does, and changes nothing', async (t) => {
  const id = newCheckoutId('scoped')
  t.equal((await create(demo, id, { amount: 1999, payment_method: 'pm_card_visa' })).status, 202)
  const owned = await nodeReaches(id, settleDeadlineMs)
  const unknown = newCheckoutId('scoped')
  const asOther = {
    get: (x: string) => getPayment(stack.publicUrl, other.key, x),
    'long-poll': (x: string) => getPayment(stack.publicUrl, other.key, x, '?wait_ms=100'),
    cancel: (x: string) => cancelPayment(stack.publicUrl, other.key, x),
    refund: (x: string) => refundPayment(stack.publicUrl, other.key, x, `k-${x}`, { amount: 100 }),
    capture: (x: string) => call(`${stack.publicUrl}/payments/${x}/capture`, { method: 'POST', headers: { authorization: `Bearer ${other.key}` } }),
    'refund read': (x: string) => call(`${stack.publicUrl}/payments/${x}/refunds/re_abcdefghijklmnopqrstuv`, { headers: { authorization: `Bearer ${other.key}` } }),
  }
  for (const [what, send] of Object.entries(asOther)) {
    const theirs = await send(id)
    const nobodys = await send(unknown)
    t.equal(theirs.status, 404, `${what} of another merchant's id: 404`)
    t.same(answerOf(theirs), answerOf(nobodys), `${what}: the same answer as an unknown id`)
  }
  t.equal((await pspCharges(id, other.id)).length, 0, 'nothing charged for the other merchant')
  // Last, as it makes the other merchant a payment of each id: a create of another merchant's id
  // is accepted like that of an unknown one (no 409 to tell that the id exists).
  const createdTheirs = await create(other, id, { amount: 700, payment_method: 'pm_card_visa' })
  const createdNobodys = await create(other, unknown, { amount: 700, payment_method: 'pm_card_visa' })
  t.same([createdTheirs.status, createdNobodys.status], [202, 202], 'create: 202 for both')
  t.same({ ...createdTheirs.body, checkout_id: undefined, created_at: undefined, updated_at: undefined },
    { ...createdNobodys.body, checkout_id: undefined, created_at: undefined, updated_at: undefined }, 'create: the same answer')
  const after = await nodeReaches(id, settleDeadlineMs)
  t.match(after, { merchant_id: demo.id, status: 'succeeded', version: owned.version, amount: 1999, refunds: [] }, 'the owner\'s payment is untouched')
})

/** What a browser does with the PSP's customer page: POST its approve form. */
async function approve (pageUrl: string): Promise<void> {
  const page = await request(pageUrl)
  const html = await page.body.text()
  const action = html.match(/action="([^"]+\/approve[^"]*)"/)?.[1]?.replaceAll('&amp;', '&')
  if (action === undefined) throw new Error(`no approve form in the page (${page.statusCode})`)
  await (await request(new URL(action, pageUrl), { method: 'POST' })).body.text()
}

t.test('a PSP webhook for one merchant\'s payment does not touch the other\'s of the same id', async (t) => {
  const id = newCheckoutId('scoped')
  t.equal((await create(demo, id, { amount: 1999, payment_method: 'pm_card_requires_action' })).status, 202)
  t.equal((await create(other, id, { amount: 1999, payment_method: 'pm_card_requires_action' })).status, 202)
  const waitingB = await nodeReaches(id, settleDeadlineMs, requiresAction, other.id)
  await nodeReaches(id, settleDeadlineMs, requiresAction, demo.id)
  // A's customer approves at the PSP: its charge.succeeded webhook (to /webhooks/psp/sandbox/<id>,
  // routed by the checkout id alone) names merchant_demo in its signed body.
  const view = await getPayment(stack.publicUrl, demo.key, id)
  await approve(view.body.next_action.redirect_to_url.url)
  const doneA = await nodeReaches(id, settleDeadlineMs, undefined, demo.id)
  t.match(doneA, { merchant_id: demo.id, status: 'succeeded' }, 'A\'s payment took its webhook')
  const [chargeA] = await pspCharges(id, demo.id)
  const hooks = await db().query('SELECT merchant_id, applied FROM webhooks WHERE checkout_id = $1 AND type = $2', [id, 'charge.succeeded'])
  t.ok(hooks.rows.every((h) => h.merchant_id === demo.id), 'the webhook is recorded against A\'s payment')
  const stillB = await nodeReaches(id, settleDeadlineMs, requiresAction, other.id)
  t.match(stillB, { status: 'requires_action', version: waitingB.version, psp_reference: waitingB.psp_reference }, 'B\'s payment did not move')
  t.not(stillB.psp_reference, chargeA.id, 'B has its own charge')

  // A genuine event of A's charge for a merchant that has no payment of the id: not found.
  const event = JSON.stringify({ id: `evt_scoped_${id}`, type: 'charge.succeeded', created: Math.floor(Date.now() / 1000),
    data: { object: { ...chargeA, merchant_id: 'merchant_nobody' } } })
  const res = await call(`${stack.publicUrl}/webhooks/psp/sandbox/${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'ringpay-signature': signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), event) },
    body: event,
  })
  t.match({ status: res.status, code: res.body.code }, { status: 404, code: 'payment_not_found' })
})
