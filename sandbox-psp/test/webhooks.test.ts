// Webhooks to a local receiver: URL, body and signature; async pending -> final; retries until
// 2xx; giving up after the attempt limit; delivery timeouts; and the duplicate, delay, drop and
// reorder switches.

import t from 'tap'
import { verifyWebhookSignature } from '../signature.ts'
import { charge, chargeBody, setConfig, startPsp, startReceiver, stats, eventually, webhookSecret } from './helpers.ts'

// Fast retries for tests: 20 ms, 40 ms, 80 ms, ... capped at 100 ms.
const fastRetries = { webhookRetryBaseMs: 20, webhookRetryMaxMs: 100, webhookAttemptsMax: 4, webhookDeliveryTimeoutMs: 500 }

t.test('every charge result is delivered, signed, to /webhooks/psp/sandbox/<reference>', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: fastRetries })
  const ok = await charge(psp, chargeBody('pm_card_visa'))
  const declined = await charge(psp, chargeBody('pm_card_declined'))
  const action = await charge(psp, chargeBody('pm_card_requires_action'))
  await receiver.waitFor((r) => r.length >= 3, 'three events')

  const expectations = [[ok, 'charge.succeeded'], [declined, 'charge.failed'], [action, 'charge.requires_action']] as const
  for (const [reply, type] of expectations) {
    const [hook, ...more] = receiver.forReference(reply.body.reference)
    t.equal(more.length, 0, `one event for ${type}`)
    t.equal(hook!.path, `/webhooks/psp/sandbox/${reply.body.reference}`)
    t.equal(hook!.headers['content-type'], 'application/json')
    t.match(hook!.event, { id: /^evt_[0-9A-Za-z]{24}$/, object: 'event', type, created: Number })
    t.same(hook!.event.data.object, reply.body, 'the event carries the charge as answered')
    const header = hook!.headers['ringpay-signature'] as string
    t.match(header, /^t=\d+,v1=[0-9a-f]{64}$/)
    const check = verifyWebhookSignature(webhookSecret, header, hook!.body, Math.floor(Date.now() / 1000), 300)
    t.equal(check.ok, true, 'the signature verifies over the raw body')
    t.equal(verifyWebhookSignature('whsec_some_other_secret', header, hook!.body, Math.floor(Date.now() / 1000), 300).ok, false)
  }
  await eventually(async () => ((await stats(psp)).webhooks.pending === 0 ? true : undefined), 'the outbox to empty')
  t.match((await stats(psp)).webhooks, { enqueued: 3, delivered: 3, failed: 0, pending: 0 })
})

t.test('async charges: charge.pending, then the final event after the async delay', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, asyncDelayMs: 50 }, limits: fastRetries })
  const ok = (await charge(psp, chargeBody('pm_card_async'))).body
  const declined = (await charge(psp, chargeBody('pm_card_async_declined'))).body
  await receiver.waitFor((r) => r.length >= 4, 'four events')
  const okEvents = receiver.forReference(ok.reference).map((hook) => hook.event)
  t.same(okEvents.map((e) => e.type), ['charge.pending', 'charge.succeeded'])
  t.match(okEvents[1].data.object, { id: ok.id, status: 'succeeded', settled_on: String, fee: Number })
  t.not(okEvents[0].id, okEvents[1].id, 'two events, two ids')
  const declinedEvents = receiver.forReference(declined.reference).map((hook) => hook.event)
  t.same(declinedEvents.map((e) => e.type), ['charge.pending', 'charge.failed'])
  t.equal(declinedEvents[1].data.object.failure_code, 'card_declined')
})

t.test('deliveries are retried with backoff until a 2xx; each attempt is signed afresh', async (t) => {
  const { receiver, url } = await startReceiver(t)
  receiver.respond = (_hook, index) => (index < 2 ? 500 : 200)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: fastRetries })
  await charge(psp, chargeBody())
  const hooks = await receiver.waitFor((r) => r.length >= 3, 'three attempts')
  t.equal(new Set(hooks.map((h) => h.event.id)).size, 1, 'the same event each time')
  t.equal(new Set(hooks.map((h) => h.body)).size, 1, 'the same bytes each time')
  t.ok(hooks[2]!.receivedAtMs - hooks[0]!.receivedAtMs >= 40, 'backoff between attempts (16 + 32 ms at least)')
  for (const hook of hooks) t.equal(verifyWebhookSignature(webhookSecret, hook.headers['ringpay-signature'] as string, hook.body, Math.floor(Date.now() / 1000), 300).ok, true)
  await eventually(async () => ((await stats(psp)).webhooks.delivered === 1 ? true : undefined), 'the delivery to be recorded')
  t.match((await stats(psp)).webhooks, { delivered: 1, failed: 0, pending: 0, attempts: 3, attemptFailures: 2 })
})

t.test('after webhookAttemptsMax failures an event is given up; slow receivers time out', async (t) => {
  const { receiver, url } = await startReceiver(t)
  receiver.respond = (_hook, index) => (index === 0 ? 'hang' : 503)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url }, limits: { ...fastRetries, webhookDeliveryTimeoutMs: 150 } })
  await charge(psp, chargeBody())
  await eventually(async () => ((await stats(psp)).webhooks.failed === 1 ? true : undefined), 'the event to be given up')
  t.equal(receiver.received.length, 4, 'exactly webhookAttemptsMax attempts; the hung one counted as failed')
  t.match((await stats(psp)).webhooks, { delivered: 0, failed: 1, pending: 0, attempts: 4, attemptFailures: 4 })
})

t.test('duplicate switch: the same event is delivered twice', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, webhookDuplicateRate: 1 }, limits: fastRetries })
  const reply = await charge(psp, chargeBody())
  const hooks = await receiver.waitFor((r) => r.length >= 2, 'two deliveries')
  t.equal(hooks.length, 2)
  t.equal(hooks[0]!.event.id, hooks[1]!.event.id, 'same event id: receivers must deduplicate')
  t.equal(hooks[0]!.body, hooks[1]!.body)
  t.equal(hooks[0]!.event.data.object.id, reply.body.id)
})

t.test('drop switch: a dropped event is never enqueued nor delivered', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, webhookDropRate: 1 }, limits: fastRetries })
  const dropped = await charge(psp, chargeBody())
  t.match((await stats(psp)).webhooks, { dropped: 1, enqueued: 0, pending: 0 }, 'decided when the charge was written')
  await setConfig(psp, { webhookDropRate: 0 })
  const delivered = await charge(psp, chargeBody())
  await receiver.waitFor((r) => r.length >= 1, 'the second event')
  t.equal(receiver.forReference(delivered.body.reference).length, 1)
  t.equal(receiver.forReference(dropped.body.reference).length, 0, 'the dropped one never came')
})

t.test('delay switch: first deliveries wait up to webhookDelayMsMax', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const delayMsMax = 400
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, webhookDelayMsMax: delayMsMax, seed: 11 }, limits: fastRetries })
  const sentAt = new Map<string, number>()
  for (let i = 0; i < 5; i++) {
    const body = chargeBody()
    sentAt.set(body.reference, Date.now())
    await charge(psp, body)
  }
  const hooks = await receiver.waitFor((r) => r.length >= 5, 'five delayed events', delayMsMax + 3_000)
  const delays = hooks.map((h) => h.receivedAtMs - sentAt.get(h.event.data.object.reference)!)
  t.ok(Math.max(...delays) >= 50, `some events were held back (delays ${delays.join(', ')} ms)`)
})

t.test('reorder switch: a stale charge.pending arrives after the newer final event', async (t) => {
  const { receiver, url } = await startReceiver(t)
  const psp = await startPsp(t, { runtime: { webhookBaseUrl: url, webhookReorderRate: 1 }, limits: fastRetries })
  const reply = await charge(psp, chargeBody())
  const hooks = await receiver.waitFor((r) => r.length >= 2, 'two events')
  t.same(hooks.map((h) => h.event.type), ['charge.succeeded', 'charge.pending'], 'newer first, stale second')
  const stale = hooks[1]!.event
  t.match(stale.data.object, { id: reply.body.id, status: 'pending', fee: 0, net: 0 })
  t.equal(stale.data.object.settled_on, undefined)
  t.ok(stale.created <= hooks[0]!.event.created, 'the stale event says it is older')
  t.not(stale.id, hooks[0]!.event.id)
})
