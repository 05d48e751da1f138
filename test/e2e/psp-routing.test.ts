// PSP routing end to end (issue #16): real nginx, nodes, relay, Kafka, processor, Postgres, the
// sandbox PSP and Nimbus. The stack routes NOK and DKK to Nimbus (cheaper), the rest to the
// sandbox (scripts/stack/app-processes.ts stackPspRouting). A payment's provider is on it before
// its charge, in the API view and in Postgres; Nimbus' asynchronous authorisation arrives as a
// batched, per-item signed notification; refunds go to the payment's own PSP.

import t from 'tap'
import { signatureHeader, signWebhook } from '../../lib/webhook-signature.ts'
import { call, createPayment, eventually, getPayment, newCheckoutId, refundPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches, pspCharges, refundSettles } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'
import { chargeIdempotencyKey } from '../../processor/psp/types.ts'

const stack = loadStackInfo()
const nimbus = stack.nimbus!
const deadlineMs = 30_000
t.teardown(closeDb)

/** Every charge Nimbus' engine ever made under this key (its admin index, like the sandbox's). */
async function nimbusCharges (checkoutId: string, merchantId = 'merchant_demo'): Promise<any[]> {
  const res = await call(`${nimbus.url}/admin/charges?idempotency_key=${encodeURIComponent(chargeIdempotencyKey(merchantId, checkoutId))}`, { headers: { 'x-api-key': nimbus.apiKey } })
  if (res.status !== 200) throw new Error(`nimbus admin answered ${res.status}: ${res.text}`)
  return res.body.data
}

t.test('a NOK payment goes to Nimbus: routed on its claim, authorised by notification, one charge there and none at the sandbox', async (t) => {
  const id = await createWith('pm_card_visa', 'route', 2500, 'NOK')
  const node = await nodeReaches(id, deadlineMs)
  t.equal(node.status, 'succeeded')
  t.equal(node.psp_provider, 'nimbus')
  const charges = await nimbusCharges(id)
  t.equal(charges.length, 1, 'one charge at nimbus')
  t.equal(node.psp_reference, charges[0].id)
  t.same(await pspCharges(id), [], 'none at the sandbox')
  const view = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)
  t.equal(view.body.psp_provider, 'nimbus', 'the routing decision in the API view')
  const row = await postgresReaches(id, node.version, deadlineMs)
  t.equal(row.psp_provider, 'nimbus', 'and in Postgres')
  const { rows: webhooks } = await db().query('SELECT provider, type, applied FROM webhooks WHERE checkout_id = $1', [id])
  t.same(webhooks.map((w) => [w.provider, w.type]), [['nimbus', 'nimbus.authorisation.success']], 'the notification that settled it, recorded')
  const { rows: attempts } = await db().query('SELECT DISTINCT provider FROM psp_attempts WHERE checkout_id = $1', [id])
  t.same(attempts.map((a) => a.provider), ['nimbus'])
})

t.test('a declined card at Nimbus fails with its refusal reason', async (t) => {
  const id = await createWith('pm_card_declined', 'route', 2500, 'DKK')
  const node = await nodeReaches(id, deadlineMs)
  t.equal(node.status, 'failed')
  t.equal(node.psp_provider, 'nimbus')
  t.equal(node.failure_code, 'card_declined')
})

t.test('an EUR payment stays with the sandbox', async (t) => {
  const id = await createWith('pm_card_visa', 'route', 2500, 'EUR')
  const node = await nodeReaches(id, deadlineMs)
  t.equal(node.status, 'succeeded')
  t.equal(node.psp_provider, 'sandbox')
  t.equal((await pspCharges(id)).length, 1)
  t.same(await nimbusCharges(id), [])
})

t.test('a refund of a Nimbus payment is made at Nimbus and settles by its notification', async (t) => {
  const id = await createWith('pm_card_visa', 'route', 3000, 'NOK')
  await nodeReaches(id, deadlineMs)
  const res = await refundPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, `rk-${id}`, { amount: 1000 })
  t.equal(res.status, 202, res.text)
  const refund = await refundSettles(id, res.body.id, deadlineMs)
  t.equal(refund.status, 'succeeded')
  const atNimbus = await call(`${nimbus.url}/admin/refunds?idempotency_key=${encodeURIComponent(`refund_${res.body.id}`)}`, { headers: { 'x-api-key': nimbus.apiKey } })
  t.equal(atNimbus.body.data.length, 1, 'one refund at nimbus')
  t.equal(refund.psp_reference, atNimbus.body.data[0].id)
})

t.test('a notification with a bad item signature is refused whole; another PSP\'s event is not applied', async (t) => {
  const id = await createWith('pm_card_visa', 'route', 2500, 'NOK')
  const node = await nodeReaches(id, deadlineMs)
  const item = {
    eventCode: 'AUTHORISATION', success: 'false', pspReference: node.psp_reference, merchantAccountCode: 'merchant_demo',
    merchantReference: id, amount: { value: 2500, currency: 'NOK' }, eventDate: new Date().toISOString(),
    additionalData: { hmacSignature: Buffer.alloc(32).toString('base64') },
  }
  const forged = await call(`${stack.publicUrl}/webhooks/psp/nimbus/${id}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ live: 'false', notificationItems: [{ NotificationRequestItem: item }] }),
  })
  t.equal(forged.status, 401, forged.text)
  t.equal(forged.body.code, 'webhook_signature_invalid')
  // A genuine sandbox event (signed with the sandbox's secret) about this Nimbus payment.
  const event = JSON.stringify({ id: `evt_other_${id}`, object: 'event', type: 'charge.failed', created: 1, data: { object: { id: 'ch_elsewhere', reference: id, merchant_id: 'merchant_demo', amount: 2500, currency: 'NOK', failure_code: 'card_declined' } } })
  const other = await call(`${stack.publicUrl}/webhooks/psp/sandbox/${id}`, {
    method: 'POST', headers: { 'content-type': 'application/json', [signatureHeader]: signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), event) }, body: event,
  })
  t.equal(other.status, 200, other.text)
  t.same([other.body.applied, other.body.note], [false, 'other_provider'], 'heard, not applied: the payment is at nimbus')
  const after = await eventually(async () => {
    const res = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)
    return res.status === 200 ? res.body : undefined
  }, deadlineMs, 'the payment')
  t.equal(after.status, 'succeeded', 'unchanged')
})

t.test('two merchants with one checkout id at Nimbus: two payments, each charged once under its own key and settled by its own items', async (t) => {
  const id = newCheckoutId('route_shared')
  for (const merchant of ['merchant_demo', 'merchant_other'] as const) {
    const res = await createPayment(stack.publicUrl, stack.apiKeys[merchant], id, { amount: merchant === 'merchant_demo' ? 2100 : 2200, currency: 'NOK', payment_method: 'pm_card_visa' })
    t.equal(res.status, 202, `${merchant}: ${res.text}`)
  }
  for (const merchant of ['merchant_demo', 'merchant_other'] as const) {
    const node = await nodeReaches(id, deadlineMs, undefined, merchant)
    t.equal(node.status, 'succeeded', `${merchant}'s payment succeeded by its own notification`)
    t.equal(node.psp_provider, 'nimbus')
    const charges = await nimbusCharges(id, merchant)
    t.equal(charges.length, 1, `${merchant}: one charge at nimbus under its own key`)
    t.equal(charges[0].amount, merchant === 'merchant_demo' ? 2100 : 2200, 'its own amount')
    t.equal(node.psp_reference, charges[0].id, 'the charge the item named')
  }
})
