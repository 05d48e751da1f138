// Never both charged and canceled (issue #14): the customer completes a requires_action charge in
// the moment between the merchant's cancel on the node and the processor's cancel at the PSP.
// Made certain by stopping the processors (serial: fault tests may stop services) between the
// two. Once they are back, the processor finds the charge succeeded and the whole charge is
// refunded: the payment ends canceled with the money back, nothing flagged.

import t from 'tap'
import { request } from 'undici'
import { cancelPayment, eventually, getInternal, getPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches, pspCharges, pspRefunds, refundSettles } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

t.test('canceled, then approved by the customer before the PSP heard of it: the charge is given back', async (t) => {
  const id = await createWith('pm_card_requires_action', 'cxlc')
  await nodeReaches(id, settleDeadlineMs, new Set(['requires_action']))
  const url: string = (await getPayment(stack.publicUrl, key, id)).body.next_action.redirect_to_url.url
  const stopped: string[] = []
  t.teardown(async () => {
    for (const pid of stopped) await control(`/services/${pid}/start`).catch(() => undefined)
  })
  for (const processor of stack.processors) {
    await control(`/services/${processor.id}/stop`)
    stopped.push(processor.id)
  }
  const canceled = await cancelPayment(stack.publicUrl, key, id)
  t.match(canceled.body, { status: 'canceled' }, 'canceled on its node')
  // The customer, still on the PSP's page, approves: nothing has told the PSP yet.
  const approve = new URL(url)
  approve.pathname += '/approve'
  t.match(await (await request(approve, { method: 'POST' })).body.text(), /data-status="succeeded"/)
  const [charge] = await pspCharges(id)
  t.equal(charge.status, 'succeeded', 'the PSP took the money')
  for (const pid of stopped.splice(0)) await control(`/services/${pid}/start`)
  const refundId = await eventually(async () => (await getInternal(stack.internalUrl, id)).body.refunds?.[0]?.id as string | undefined,
    settleDeadlineMs, 'the processor to refund the charge')
  const refund = await refundSettles(id, refundId, settleDeadlineMs)
  t.match(refund, { status: 'succeeded', amount: canceled.body.amount }, 'the whole charge given back')
  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(node, { status: 'canceled', amount_refunded: canceled.body.amount }, 'canceled, with the money back')
  const psp = await pspRefunds(refundId)
  t.equal(psp.length, 1, 'one PSP refund')
  t.match(psp[0], { charge: charge.id, amount: charge.amount, status: 'succeeded' })
  const row = await postgresReaches(id, node.version, settleDeadlineMs)
  t.match(row, { status: 'canceled', flagged_reason: null }, 'nothing for a person to do')
  const { rows } = await db().query('SELECT status, amount FROM refunds WHERE refund_id = $1', [refundId])
  t.match(rows, [{ status: 'succeeded' }], 'the refund in Postgres')
  // The charge's charge.succeeded webhook could not undo the cancel: recorded as a disagreement.
  await eventually(async () => {
    const { rows } = await db().query('SELECT 1 FROM payment_events WHERE checkout_id = $1 AND type = $2', [id, 'payment.webhook_received'])
    return rows.length > 0 ? true : undefined
  }, settleDeadlineMs, 'the webhook recorded in Postgres')
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'canceled' }, 'still canceled')
})
