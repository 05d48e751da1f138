// POST /payments/{id}/cancel through nginx, against the running processors: a cancel racing the
// processor's claim of payments just created. For every id exactly one side wins: canceled with
// no PSP charge, or charged and not canceled (the cancel refused 409). A payment awaiting the
// customer is canceled with its PSP charge. Plus the refusals: a final payment (409), another
// merchant's (404), the wrong method (405).
// The deterministic "cancel lands first" case, with the processors stopped, is in
// test/faults/cancel.test.ts.

import t from 'tap'
import { call, cancelPayment, createPayment, eventually, getInternal, getPayment, newCheckoutId, validBody } from '../helpers/api.ts'
import { closeDb, createSettledForAction, createWith, db, nodeReaches, postgresReaches, pspCharges } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

interface Raced { id: string, method: string, cancel: { status: number, body: any }, polled: Promise<{ status: number, body: any }> }

t.test('a cancel racing the processor: exactly one side wins for every payment', async (t) => {
  // pm_card_async stays `processing` at the PSP until its webhook: a cancel that lands then meets
  // a charge in flight and must be refused. Cancels are sent 0..240 ms after the 202, so they land
  // before or after the processor's claim as it happens; every 8th waits until the node shows the
  // claim, so that side is seen on every run (a quiet machine claims in well under 100 ms).
  const count = 24
  const claimedFirst = (i: number): boolean => i % 8 === 7
  const raced = await Promise.all(Array.from({ length: count }, async (_, i): Promise<Raced> => {
    const method = i % 2 === 0 ? 'pm_card_visa' : 'pm_card_async'
    const id = newCheckoutId('cxl')
    const created = await createPayment(stack.publicUrl, key, id, { ...validBody, payment_method: method })
    if (created.status !== 202) throw new Error(`create ${id}: ${created.status} ${created.text}`)
    // Woken by whichever change comes first: the cancel (v2) or the outcome (v3, the claim counted).
    const polled = getPayment(stack.publicUrl, key, id, '?wait_ms=20000&after_version=1')
    if (claimedFirst(i)) await nodeReaches(id, settleDeadlineMs, new Set(['processing', 'succeeded']))
    else await new Promise((resolve) => setTimeout(resolve, (i % 8) * 40))
    const cancel = await cancelPayment(stack.publicUrl, key, id)
    return { id, method, cancel, polled }
  }))
  let won = 0
  let refused = 0
  for (const [i, { id, method, cancel, polled }] of raced.entries()) {
    if (claimedFirst(i)) t.equal(cancel.status, 409, `${id}: claimed before its cancel, so refused`)
    const node = await nodeReaches(id, settleDeadlineMs)
    const row = await postgresReaches(id, node.version, settleDeadlineMs)
    t.equal(row.status, node.status, `${id}: Postgres equals the node`)
    const poll = await polled
    t.equal(poll.status, 200)
    t.ok(poll.body.version > 1, `${id}: the long-poll was woken by a change`)
    if (cancel.status === 200) {
      won++
      t.match(cancel.body, { checkout_id: id, status: 'canceled', version: 2 }, `${id}: canceled`)
      t.match(node, { status: 'canceled', version: 2 }, `${id}: canceled on its node, nothing after it`)
      t.match(poll.body, { status: 'canceled', version: 2 }, `${id}: the long-poll saw the cancel`)
    } else {
      refused++
      t.equal(cancel.status, 409, `${id}: refused`)
      t.equal(cancel.body.code, 'payment_not_cancelable')
      t.match(cancel.body.current_status, /^(processing|succeeded)$/, `${id}: refused because the processor claimed it first`)
      t.equal(node.status, 'succeeded', `${id} (${method}): charged and not canceled`)
    }
  }
  t.equal(won + refused, count)
  t.comment(`${won} canceled, ${refused} refused`)
  // Checked once every payment has settled, so the processor has long had each created event.
  for (const { id, cancel } of raced) {
    const charges = await pspCharges(id)
    if (cancel.status === 200) t.equal(charges.length, 0, `${id}: canceled and never charged`)
    else t.same(charges.map((charge) => charge.status), ['succeeded'], `${id}: charged once`)
  }
})

t.test('a succeeded payment is not cancelable', async (t) => {
  const id = await createWith('pm_card_visa', 'cxl')
  const node = await nodeReaches(id, settleDeadlineMs)
  t.equal(node.status, 'succeeded')
  const res = await cancelPayment(stack.publicUrl, key, id)
  t.equal(res.status, 409)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.body, { code: 'payment_not_cancelable', current_status: 'succeeded', current_version: node.version })
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'succeeded', version: node.version }, 'unchanged')
})

t.test('a payment awaiting customer action is canceled, and so is its charge at the PSP', async (t) => {
  const { id, version } = await createSettledForAction('cxl')
  const [held] = await pspCharges(id)
  t.equal(held?.status, 'requires_action', 'the PSP holds a charge awaiting the customer')
  const res = await cancelPayment(stack.publicUrl, key, id)
  t.equal(res.status, 200)
  t.match(res.body, { checkout_id: id, status: 'canceled', version: version + 1 })
  // The processor cancels the charge on the canceled change event.
  const charge = await eventually(async () => {
    const charges = await pspCharges(id)
    return charges.length === 1 && charges[0].status === 'canceled' ? charges[0] : undefined
  }, settleDeadlineMs, `the PSP charge of ${id} to be canceled`)
  t.equal(charge.id, held.id, 'the same charge, not a new one')
  const attempt = await eventually(async () => {
    const { rows } = await db().query("SELECT outcome, http_status, request FROM psp_attempts WHERE checkout_id = $1 AND outcome = 'cancel_canceled'", [id])
    return rows[0]
  }, settleDeadlineMs, 'the cancel attempt in psp_attempts')
  t.match(attempt, { http_status: 200, request: { cancel: held.id } }, 'recorded like every PSP call')
  const row = await postgresReaches(id, version + 1, settleDeadlineMs)
  t.match(row, { status: 'canceled', psp_reference: held.id })
  t.equal(row.flagged_reason, null, 'not flagged')
  // Its charge.canceled webhook only confirms the payment: nothing more is written.
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'canceled', version: version + 1 })
  const again = await cancelPayment(stack.publicUrl, key, id)
  t.match(again.body, { status: 'canceled', version: version + 1 })
  t.equal(again.headers['idempotent-replayed'], 'true')
})

t.test('another merchant gets 404 and changes nothing; unknown ids are 404', async (t) => {
  const { id, version } = await createSettledForAction('cxl')
  const res = await cancelPayment(stack.publicUrl, stack.apiKeys.merchant_other, id)
  t.equal(res.status, 404)
  t.equal(res.body.code, 'payment_not_found')
  t.notMatch(res.text, /requires_action|1999|merchant_demo/)
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'requires_action', version })
  const unknown = await cancelPayment(stack.publicUrl, key, newCheckoutId('cxl'))
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'payment_not_found')
})

t.test('method, key and id are checked', async (t) => {
  const id = newCheckoutId('cxl')
  const get = await call(`${stack.publicUrl}/payments/${id}/cancel`, { headers: { authorization: `Bearer ${key}` } })
  t.equal(get.status, 405)
  t.equal(get.body.code, 'method_not_allowed')
  const noKey = await call(`${stack.publicUrl}/payments/${id}/cancel`, { method: 'POST' })
  t.equal(noKey.status, 401)
  const mismatch = await cancelPayment(stack.publicUrl, key, id, { 'x-payment-checkout-id': newCheckoutId('cxl') })
  t.equal(mismatch.status, 400)
  t.equal(mismatch.body.code, 'checkout_id_invalid')
})

t.test('the cancel is routed to the node that owns the id', async (t) => {
  // Routed by the id in the path alone (no header): a miss would be answered payment_not_found.
  const ids = await Promise.all(Array.from({ length: 6 }, () => createWith('pm_card_requires_action', 'cxl')))
  for (const id of ids) {
    await nodeReaches(id, settleDeadlineMs, new Set(['requires_action']))
    const res = await cancelPayment(stack.publicUrl, key, id)
    t.match(res.body, { checkout_id: id, status: 'canceled' }, `${id} found on its node`)
  }
})
