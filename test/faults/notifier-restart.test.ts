// The notifier stopped or killed (-9) and started again, and Postgres stopped under it, on the
// shared stack (a fault test: run alone, since other tests' webhooks wait meanwhile): events of
// payments made while it was down are delivered after it starts (Kafka offsets were committed
// only after Postgres had the rows), a delivery still retrying when it was killed resumes from
// Postgres (its lease expires), and a payment made while Postgres is down is delivered once it is
// back (the event writer and the dispatcher retry; nothing is committed past the unwritten events).

import t from 'tap'
import { call, createPayment, newCheckoutId } from '../helpers/api.ts'
import { nodeReaches } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'
import { createEndpoint, notifierCall, pollUntil, WebhookReceiver, type ReceivedWebhook, type Responder } from '../helpers/webhooks.ts'

const stack = loadStackInfo()
const demoKey = stack.apiKeys.merchant_demo
// A killed member holds its partitions until its Kafka session (30 s) expires.
const deadlineMs = 60_000

async function pay (): Promise<string> {
  const id = newCheckoutId('whr')
  const res = await createPayment(stack.publicUrl, demoKey, id, { amount: 1500, currency: 'EUR', payment_method: 'pm_card_visa' })
  if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  return id
}

function received (receiver: WebhookReceiver, checkoutId: string, type: string, count = 1): Promise<ReceivedWebhook[]> {
  return pollUntil(`${count} × ${type} of ${checkoutId}`, () => {
    const got = receiver.forCheckout(checkoutId).filter((r) => r.body.type === type)
    return got.length >= count ? got : undefined
  }, deadlineMs)
}

async function withEndpoint (t: any, responder?: Responder, events: string[] = ['*']): Promise<{ receiver: WebhookReceiver, id: string }> {
  const receiver = await WebhookReceiver.start(responder)
  const endpoint = await createEndpoint(stack.publicUrl, demoKey, receiver.url, events)
  t.teardown(async () => {
    await notifierCall(stack.publicUrl, demoKey, 'DELETE', `/webhook_endpoints/${endpoint.id}`)
    await receiver.close()
  })
  return { receiver, id: endpoint.id }
}

/** The notifier's count of retried event writes (its metrics, on its own port). */
async function storeRetries (): Promise<number> {
  const res = await call(`http://127.0.0.1:${stack.notifier!.port}/metrics`)
  const line = res.text.split('\n').find((l) => l.startsWith('ringpay_notifier_store_retries_total '))
  return Number(line?.split(' ')[1] ?? 0)
}

// First, while the notifier is surely consuming (a killed member holds its partitions for a while).
t.test('durable: a payment made while Postgres is down is delivered once Postgres is back', async (t) => {
  const { receiver } = await withEndpoint(t, undefined, ['payment.succeeded'])
  await control('/postgres/stop')
  let started = false
  t.teardown(async () => { if (!started) await control('/postgres/start') })
  const retriesBefore = await storeRetries()
  const id = await pay()
  // The node accepts without Postgres; the notifier reads the events and cannot write them: it
  // retries (and commits no offset past them) until Postgres is back.
  await pollUntil('the notifier retrying its write', async () => (await storeRetries()) > retriesBefore ? true : undefined, deadlineMs)
  t.equal(receiver.forCheckout(id).length, 0)
  await control('/postgres/start')
  started = true
  const [hook] = await received(receiver, id, 'payment.succeeded')
  t.equal(hook!.body.checkout_id, id)
})

t.test('durable: events of payments made while the notifier is down are delivered after it starts', async (t) => {
  const { receiver } = await withEndpoint(t, undefined, ['payment.succeeded'])
  await control('/services/notifier/stop')
  let started = false
  t.teardown(async () => { if (!started) await control('/services/notifier/start') })
  const id = await pay()
  await nodeReaches(id, deadlineMs)
  t.equal(receiver.forCheckout(id).length, 0)
  await control('/services/notifier/start')
  started = true
  const [hook] = await received(receiver, id, 'payment.succeeded')
  t.equal(hook!.body.checkout_id, id)
})

t.test('durable: a delivery still retrying when the notifier is killed (-9) is resumed from Postgres after it restarts', async (t) => {
  let restarted = false
  const { receiver } = await withEndpoint(t, () => ({ status: restarted ? 200 : 500 }), ['payment.succeeded'])
  const id = await pay()
  await received(receiver, id, 'payment.succeeded', 1)
  await control('/services/notifier/kill')
  t.teardown(async () => { if (!restarted) await control('/services/notifier/start') })
  restarted = true
  const restartedAtMs = Date.now()
  await control('/services/notifier/start')
  // Answered 200 only from now on: the success can only come from the restarted notifier.
  const hooks = await pollUntil('a delivery after the restart', () => {
    const all = receiver.forCheckout(id)
    return all.some((r) => r.receivedAtMs >= restartedAtMs) ? all : undefined
  }, deadlineMs)
  t.equal(new Set(hooks.map((h) => h.body.id)).size, 1, 'the same event every time')
  const delivered = await pollUntil('the delivery succeeded', async () => {
    const res = await notifierCall(stack.publicUrl, demoKey, 'GET', `/events?checkout_id=${id}&type=payment.succeeded`)
    const d = res.body.data[0]?.deliveries?.find((x: any) => x.status === 'succeeded')
    return d
  }, deadlineMs)
  t.ok(delivered.attempts >= 2, `${delivered.attempts} attempts`)
})
