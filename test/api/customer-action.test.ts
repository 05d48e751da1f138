// A payment awaiting the customer (issue #14): the processor records the PSP's page as
// `next_action.redirect_to_url.url`; the customer approves or declines there; the PSP's webhook
// brings the outcome to the node, Postgres follows. What the checkout page does, end to end.

import t from 'tap'
import { request } from 'undici'
import { cancelPayment, createPayment, getInternal, getPayment, newCheckoutId, transition, validBody } from '../helpers/api.ts'
import { closeDb, createWith, nodeReaches, postgresReaches, pspCharges } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

/** A payment at requires_action with its next action shown to the merchant. */
async function awaitingCustomer (): Promise<{ id: string, url: string, version: number }> {
  const id = await createWith('pm_card_requires_action', 'act')
  await nodeReaches(id, settleDeadlineMs, new Set(['requires_action']))
  const view = await getPayment(stack.publicUrl, key, id)
  if (view.status !== 200 || view.body.status !== 'requires_action') throw new Error(`${id}: ${view.text}`)
  const url: unknown = view.body.next_action?.redirect_to_url?.url
  if (view.body.next_action?.type !== 'redirect_to_url' || typeof url !== 'string') throw new Error(`${id}: no next_action in ${view.text}`)
  return { id, url, version: view.body.version }
}

/** What a browser does with the page's form: POST to its action, same origin. */
async function submit (pageUrl: string, decision: 'approve' | 'decline'): Promise<string> {
  const page = await request(pageUrl)
  const html = await page.body.text()
  if (page.statusCode !== 200) throw new Error(`page ${page.statusCode}: ${html}`)
  const action = html.match(new RegExp(`action="([^"]+/${decision}[^"]*)"`))?.[1]?.replaceAll('&amp;', '&')
  if (action === undefined) throw new Error(`no ${decision} form in the page`)
  const done = await request(new URL(action, pageUrl), { method: 'POST' })
  return done.body.text()
}

t.test('approved by the customer: the payment succeeds on its node and in Postgres', async (t) => {
  const { id, url, version } = await awaitingCustomer()
  const [charge] = await pspCharges(id)
  t.equal(charge?.status, 'requires_action')
  t.match(url, new RegExp(`/challenge/${charge.id}\\?token=`), 'the PSP\'s page for this charge')
  // The checkout page long-polls while the customer is away.
  const polled = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${version}`)
  t.match(await submit(url, 'approve'), /data-status="succeeded"/)
  const poll = await polled
  t.match(poll.body, { checkout_id: id, status: 'succeeded', psp_reference: charge.id }, 'the long-poll saw the outcome')
  t.notOk(poll.body.next_action, 'no next action once the customer acted')
  const node = await nodeReaches(id, settleDeadlineMs)
  t.equal(node.status, 'succeeded')
  const row = await postgresReaches(id, node.version, settleDeadlineMs)
  t.match(row, { status: 'succeeded', psp_reference: charge.id, flagged_reason: null })
  t.equal((await pspCharges(id)).length, 1, 'still one charge at the PSP')
})

t.test('declined by the customer: the payment fails with the PSP\'s reason', async (t) => {
  const { id, url } = await awaitingCustomer()
  t.match(await submit(url, 'decline'), /data-status="failed"/)
  const node = await nodeReaches(id, settleDeadlineMs)
  t.match(node, { status: 'failed', failure_code: 'authentication_declined' })
  const row = await postgresReaches(id, node.version, settleDeadlineMs)
  t.equal(row.status, 'failed')
})

t.test('canceled by the merchant first: the page shows it and the customer cannot pay', async (t) => {
  const { id, url } = await awaitingCustomer()
  const canceled = await cancelPayment(stack.publicUrl, key, id)
  t.equal(canceled.status, 200)
  t.notOk(canceled.body.next_action, 'a canceled payment has no next action')
  // The processor cancels the charge at the PSP on the canceled event; then the page says so.
  const deadline = Date.now() + settleDeadlineMs
  let charge: any
  while (Date.now() < deadline) {
    [charge] = await pspCharges(id)
    if (charge?.status === 'canceled') break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(charge?.status, 'canceled', 'canceled at the PSP')
  const page = await request(url)
  t.match(await page.body.text(), /data-status="canceled"/, 'the page says the shop canceled it')
  // A customer who kept the page open and clicks Approve anyway.
  const approve = new URL(url)
  approve.pathname += '/approve'
  const late = await request(approve, { method: 'POST' })
  t.match(await late.body.text(), /data-status="canceled"/)
  t.equal((await pspCharges(id))[0].status, 'canceled', 'the approval changed nothing')
  t.equal((await nodeReaches(id, settleDeadlineMs)).status, 'canceled')
})

t.test('the internal API keeps next_action_url to requires_action and to acceptable URLs', async (t) => {
  const processorToken = stack.internalTokens.processor
  const id = newCheckoutId('act')
  const created = await createPayment(stack.publicUrl, key, id, { ...validBody, payment_method: 'pm_card_requires_action' })
  t.equal(created.status, 202)
  const node = await nodeReaches(id, settleDeadlineMs, new Set(['requires_action']))
  for (const [body, why] of [
    [{ to: 'failed', expected_version: node.version, next_action_url: 'https://psp.example/challenge/ch_1' }, 'with another status'],
    [{ to: 'requires_action', expected_version: node.version, psp_reference: 'ch_x', next_action_url: 'javascript:alert(1)' }, 'not http(s)'],
    [{ to: 'requires_action', expected_version: node.version, psp_reference: 'ch_x', next_action_url: 'https://user:pw@psp.example/' }, 'with credentials'],
    [{ to: 'requires_action', expected_version: node.version, psp_reference: 'ch_x', next_action_url: 'https://psp.example/?pan=4111111111111111' }, 'card-shaped'],
    [{ to: 'requires_action', expected_version: node.version, psp_reference: 'ch_x', next_action_url: `https://psp.example/${'a'.repeat(2048)}` }, 'too long'],
  ] as const) {
    const res = await transition(stack.internalUrl, id, body, processorToken)
    t.equal(res.status, 400, `refused ${why}`)
    t.match(res.body, { code: 'validation_failed', errors: [{ field: 'next_action_url' }] }, why)
  }
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'requires_action', version: node.version }, 'nothing changed')
})
