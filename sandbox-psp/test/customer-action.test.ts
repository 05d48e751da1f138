// The customer's page of a requires_action charge: the link is in next_action; approving makes
// the charge succeed (and settle), declining makes it fail, each with its signed webhook; the
// token guards the page; a cancel and the customer's decision never both apply.

import t from 'tap'
import { formatAmount } from '../customer-action.ts'
import { call, charge, chargeBody, startPsp, startReceiver, stats } from './helpers.ts'

const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 4, webhookDeliveryTimeoutMs: 500 }

async function actionCharge (psp: Awaited<ReturnType<typeof startPsp>>): Promise<{ id: string, reference: string, url: string }> {
  const made = await charge(psp, chargeBody('pm_card_requires_action', { amount: 1999, currency: 'EUR' }))
  if (made.body.status !== 'requires_action') throw new Error(`expected requires_action, got ${made.text}`)
  const url: string = made.body.next_action?.redirect_to_url?.url
  if (made.body.next_action?.type !== 'redirect_to_url' || typeof url !== 'string') throw new Error(`no next_action in ${made.text}`)
  return { id: made.body.id, reference: made.body.reference, url }
}

t.test('approve: the charge succeeds, settles today, and its webhook goes out', async (t) => {
  const { receiver, url: hooks } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: hooks }, limits: fastRetries })
  const action = await actionCharge(psp)
  t.ok(action.url.startsWith(`${psp.url}/challenge/${action.id}?token=`), 'the link points at this PSP')
  const page = await call(action.url, { headers: { authorization: '' } })
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(page.headers['cache-control'], 'no-store')
  t.match(page.text, /<button id="approve"/)
  t.match(page.text, /<button id="decline"/)
  t.match(page.text, /19\.99 EUR/)
  const approve = page.text.match(/action="([^"]+\/approve[^"]*)"/)?.[1]?.replaceAll('&amp;', '&')
  t.ok(approve, 'the page posts to approve')
  const done = await call(`${psp.url}${approve!}`, { method: 'POST', headers: { authorization: '' } })
  t.equal(done.status, 200)
  t.match(done.text, /data-status="succeeded"/)
  const stored = (await call(`${psp.url}/v1/charges/${action.id}`)).body
  t.match(stored, { status: 'succeeded', settled_on: String, succeeded_at: Number })
  t.notOk(stored.next_action, 'no next action once the customer acted')
  t.ok(stored.fee > 0)
  await receiver.waitFor((r) => r.some((hook) => hook.event.type === 'charge.succeeded' && hook.event.data.object.id === action.id), 'charge.succeeded')
  t.match((await stats(psp)).charges, { requires_action: 0, succeeded: 1 })
  const today = new Date().toISOString().slice(0, 10)
  const report = await call(`${psp.url}/v1/settlements/${today}.csv`)
  t.match(report.text, new RegExp(`${action.id},${action.reference}`), 'in the settlement report')
  // A second click (or the back button) shows the outcome and changes nothing.
  const again = await call(`${psp.url}${approve!}`, { method: 'POST', headers: { authorization: '' } })
  t.match(again.text, /data-status="succeeded"/)
  const declineAfter = await call(`${psp.url}${approve!.replace('/approve', '/decline')}`, { method: 'POST', headers: { authorization: '' } })
  t.match(declineAfter.text, /data-status="succeeded"/, 'a decline after the approval changes nothing')
  t.match((await stats(psp)).charges, { requires_action: 0, succeeded: 1, failed: 0 })
  t.match((await call(action.url)).text, /data-status="succeeded"/, 'the page now shows the outcome')
})

t.test('decline: the charge fails with its reason and never settles', async (t) => {
  const psp = await startPsp(t)
  const action = await actionCharge(psp)
  const token = new URL(action.url).searchParams.get('token')!
  const done = await call(`${psp.url}/challenge/${action.id}/decline?token=${token}`, { method: 'POST' })
  t.match(done.text, /data-status="failed"/)
  const stored = (await call(`${psp.url}/v1/charges/${action.id}`)).body
  t.match(stored, { status: 'failed', failure_code: 'authentication_declined', fee: 0, net: 0 })
  t.notOk(stored.settled_on)
  t.match((await stats(psp)).charges, { requires_action: 0, failed: 1 })
})

t.test('the token guards the page and the actions', async (t) => {
  const psp = await startPsp(t)
  const action = await actionCharge(psp)
  const other = await actionCharge(psp)
  const otherToken = new URL(other.url).searchParams.get('token')!
  for (const path of [`/challenge/${action.id}`, `/challenge/${action.id}?token=`, `/challenge/${action.id}?token=${otherToken}`]) {
    t.equal((await call(`${psp.url}${path}`)).status, 404, `GET ${path}`)
  }
  const forged = await call(`${psp.url}/challenge/${action.id}/approve?token=${otherToken}`, { method: 'POST' })
  t.equal(forged.status, 404, 'another charge\'s token approves nothing')
  t.equal((await call(`${psp.url}/challenge/${action.id}/refund?token=x`, { method: 'POST' })).status, 404, 'unknown action')
  t.equal((await call(`${psp.url}/v1/charges/${action.id}`)).body.status, 'requires_action', 'unchanged')
})

t.test('a cancel and the customer\'s approval racing: exactly one applies', async (t) => {
  const psp = await startPsp(t)
  const tally: Record<string, number> = { requires_action: 0, canceled: 0, succeeded: 0 }
  for (let round = 0; round < 5; round++) {
    const action = await actionCharge(psp)
    const token = new URL(action.url).searchParams.get('token')!
    const [cancel, approve] = await Promise.all([
      call(`${psp.url}/v1/charges/${action.id}/cancel`, { method: 'POST' }),
      call(`${psp.url}/challenge/${action.id}/approve?token=${token}`, { method: 'POST' }),
    ])
    const stored = (await call(`${psp.url}/v1/charges/${action.id}`)).body
    tally[stored.status] = (tally[stored.status] ?? 0) + 1
    if (stored.status === 'canceled') {
      t.notOk(stored.settled_on, 'a canceled charge never settles')
      t.notMatch(approve.text, /data-status="succeeded"/, 'the customer was not told it succeeded')
    }
    if (stored.status === 'succeeded') t.not(cancel.status, 200, 'the cancel was refused or told to retry')
  }
  // Each charge moved once: a double apply would count it in two final statuses.
  t.match((await stats(psp)).charges, tally, 'the counters agree with the stored charges')
})

t.test('amounts are formatted from minor units without floating point', async (t) => {
  t.equal(formatAmount(1999, 'EUR'), '19.99 EUR')
  t.equal(formatAmount(5, 'EUR'), '0.05 EUR')
  t.equal(formatAmount(1999, 'JPY'), '1999 JPY')
  t.equal(formatAmount(1999, 'KWD'), '1.999 KWD')
})
