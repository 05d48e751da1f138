// Merchant webhooks (issue #15, notifier/) end to end through the shared stack: a receiver on
// 127.0.0.1 (the stack's dev mode allows loopback endpoints) registered with the public API gets
// each payment's events signed, in version order, again after a failure with the same event id;
// never another merchant's; secrets roll with both signing meanwhile; a failing endpoint is
// disabled and says why; events list newest first in keyset pages and can be redelivered.
// (Stopping and killing the notifier: test/faults/notifier-restart.test.ts.)
// Waits are polls with deadlines, never fixed sleeps.

import t from 'tap'
import { verifyWebhookSignature } from '../../lib/webhook-signature.ts'
import { merchantEventId } from '../../notifier/events.ts'
import { createPayment, eventually, getPayment, newCheckoutId, refundPayment } from '../helpers/api.ts'
import { closeDb, db, nodeReaches } from '../helpers/e2e.ts'
import { freshMerchantKey } from '../helpers/merchants.ts'
import { loadStackInfo } from '../helpers/stack.ts'
import { createEndpoint, notifierCall, pollUntil, WebhookReceiver, type ReceivedWebhook, type Responder } from '../helpers/webhooks.ts'

const stack = loadStackInfo()
const demoKey = stack.apiKeys.merchant_demo
const otherKey = stack.apiKeys.merchant_other
const readKey = stack.apiKeys.merchant_demo_read
const deadlineMs = 30_000
t.teardown(closeDb)

async function pay (key: string, paymentMethod = 'pm_card_visa', prefix = 'whk'): Promise<string> {
  const id = newCheckoutId(prefix)
  const res = await createPayment(stack.publicUrl, key, id, { amount: 1500, currency: 'EUR', payment_method: paymentMethod, description: 'webhook test', metadata: { order: 'a1' } })
  if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  return id
}

function received (receiver: WebhookReceiver, checkoutId: string, type: string, count = 1): Promise<ReceivedWebhook[]> {
  return pollUntil(`${count} × ${type} of ${checkoutId}`, () => {
    const got = receiver.forCheckout(checkoutId).filter((r) => r.body.type === type)
    return got.length >= count ? got : undefined
  }, deadlineMs)
}

/** A receiver and an endpoint on it for the test, both gone at its end. */
async function withEndpoint (t: any, key: string, responder?: Responder, events: string[] = ['*']): Promise<{ receiver: WebhookReceiver, id: string, secret: string }> {
  const receiver = await WebhookReceiver.start(responder)
  // A merchant's new key is in force within the services' reload interval (2 s): 401 until then.
  const endpoint = await eventually(() => createEndpoint(stack.publicUrl, key, receiver.url, events).catch((error: Error) => {
    if (/^creating an endpoint: 401 /.test(error.message)) return undefined
    throw error
  }), deadlineMs, 'the endpoint created')
  t.teardown(async () => {
    await notifierCall(stack.publicUrl, key, 'DELETE', `/webhook_endpoints/${endpoint.id}`)
    await receiver.close()
  })
  return { receiver, ...endpoint }
}

const nowS = (): number => Math.floor(Date.now() / 1000)

t.test('a payment\'s payment.succeeded reaches the endpoint, signed, with its event id, version and object', async (t) => {
  const { receiver, secret } = await withEndpoint(t, demoKey)
  const id = await pay(demoKey)
  const [hook] = await received(receiver, id, 'payment.succeeded')
  const node = await nodeReaches(id, deadlineMs)
  t.same(verifyWebhookSignature(secret, hook!.headers['ringpay-signature'] as string, hook!.raw, nowS(), 300), { ok: true }, 'the signature verifies with the secret shown at creation')
  t.same(verifyWebhookSignature('whsec_wrong', hook!.headers['ringpay-signature'] as string, hook!.raw, nowS(), 300), { ok: false, reason: 'mismatch' })
  t.match(hook!.body, { object: 'event', type: 'payment.succeeded', checkout_id: id, version: node.version, id: /^evt_[a-p]{32}$/ })
  t.equal(hook!.headers['ringpay-event-id'], hook!.body.id, 'the event id is also a header')
  // The id is derived from the node's change event (as projected into Postgres by the processor).
  const change = await pollUntil('the change event in Postgres', async () => {
    const { rows } = await db().query('SELECT event_id FROM payment_events WHERE checkout_id = $1 AND version = $2', [id, node.version])
    return rows[0]?.event_id as string | undefined
  }, deadlineMs)
  t.equal(hook!.body.id, merchantEventId(change, id), 'the event id is the change event\'s, derived')
  const view = await getPayment(stack.publicUrl, demoKey, id)
  t.same(hook!.body.data.object, view.body, 'the object is GET /payments/{id} at that version')
  t.notOk(/4111|card_number/.test(hook!.raw), 'no card number')
  const [created] = await received(receiver, id, 'payment.created')
  t.equal(created!.body.version, 1)
  t.ok(receiver.forCheckout(id).indexOf(created!) < receiver.forCheckout(id).indexOf(hook!), 'created before succeeded')
  // The event as the list shows it: same id and body, delivered once.
  const list = await notifierCall(stack.publicUrl, demoKey, 'GET', `/events?checkout_id=${id}`)
  t.equal(list.status, 200)
  const listed = list.body.data.find((e: any) => e.id === hook!.body.id)
  t.match(listed, { type: 'payment.succeeded', version: node.version, deliveries: [{ status: 'succeeded', attempts: 1, last_http_status: 200 }] })
})

t.test('at rest: the endpoint secret and the event body are sealed in Postgres', async (t) => {
  const { receiver, id: endpointId, secret } = await withEndpoint(t, demoKey, undefined, ['payment.succeeded'])
  const id = await pay(demoKey)
  const [hook] = await received(receiver, id, 'payment.succeeded')
  const { rows: [endpoint] } = await db().query('SELECT url, secret_sealed FROM webhook_endpoints WHERE id = $1', [endpointId])
  t.match(endpoint.secret_sealed, /^enc:/)
  t.notOk(endpoint.secret_sealed.includes(secret.slice('whsec_'.length)), 'the secret is not stored in clear')
  const { rows: [event] } = await db().query('SELECT payload_sealed FROM merchant_events WHERE id = $1', [hook!.body.id])
  t.match(event.payload_sealed, /^enc:/)
  t.notOk(/pm_card_visa|webhook test|"order"/.test(event.payload_sealed), 'nor the payment method, description or metadata')
})

t.test('a receiver answering 500 then 200 gets the same event again, and every attempt is recorded', async (t) => {
  const failedOnce = new Set<string>()
  const { receiver, id: endpointId } = await withEndpoint(t, demoKey, (r: ReceivedWebhook) => {
    if (r.body?.type !== 'payment.succeeded' || failedOnce.has(r.body.id)) return { status: 200 }
    failedOnce.add(r.body.id)
    return { status: 500 }
  }, ['payment.succeeded'])
  const id = await pay(demoKey)
  const [first, second] = await received(receiver, id, 'payment.succeeded', 2)
  t.equal(second!.body.id, first!.body.id, 'same event id')
  t.equal(second!.raw, first!.raw, 'same body, byte for byte')
  const attempts = await pollUntil('two attempts recorded', async () => {
    const { rows } = await db().query('SELECT http_status, latency_ms, error, attempted_at FROM webhook_attempts WHERE event_id = $1 AND endpoint_id = $2 ORDER BY attempted_at',
      [first!.body.id, endpointId])
    return rows.length >= 2 && rows[1].http_status === 200 ? rows : undefined
  }, deadlineMs)
  t.match(attempts, [{ http_status: 500, error: /HTTP 500/ }, { http_status: 200, error: null }])
  // The merchant sees every attempt too, newest first.
  const one = await notifierCall(stack.publicUrl, readKey, 'GET', `/events/${first!.body.id}`)
  t.equal(one.status, 200)
  const mine = one.body.deliveries.find((d: any) => d.endpoint_id === endpointId)
  t.match(mine.attempt_log, [{ http_status: 200, error: null }, { http_status: 500, error: /HTTP 500/ }])
  t.ok(mine.attempt_log.every((a: any) => Number.isInteger(a.latency_ms) && typeof a.attempted_at === 'string'))
  t.match(await notifierCall(stack.publicUrl, otherKey, 'GET', `/events/${first!.body.id}`), { status: 404, body: { code: 'event_not_found' } }, 'not another merchant\'s')
  t.ok(attempts.every((a: any) => a.latency_ms >= 0))
  const list = await notifierCall(stack.publicUrl, demoKey, 'GET', `/events?checkout_id=${id}&type=payment.succeeded`)
  t.match(list.body.data[0].deliveries, [{ status: 'succeeded', attempts: 2, last_http_status: 200 }])
})

t.test('per payment in version order: a slow or failing first event holds back the next', async (t) => {
  // A merchant of its own: the endpoint fails every payment's first event, and on merchant_demo
  // the other tests' payments made meanwhile added failures until the stack's notifier disabled
  // it (NOTIFIER_DISABLE_AFTER_FAILURES_MIN 5 in a row over 1 s) and these events never came.
  // Its own three payments fail at most three in a row.
  const { key } = await freshMerchantKey(stack, 'whk_order')
  const seenCreated = new Set<string>()
  const { receiver } = await withEndpoint(t, key, (r: ReceivedWebhook) => {
    if (r.body?.type !== 'payment.created') return { status: 200 }
    // The first event: first attempt slow and failing, the retry slow and succeeding.
    const first = !seenCreated.has(r.body.id)
    seenCreated.add(r.body.id)
    return { status: first ? 500 : 200, delayMs: 700 }
  })
  // The nodes take the new key within the same reload interval: a 401 there made nothing; again.
  const ids = await Promise.all([0, 1, 2].map(() => eventually(() => pay(key).catch((error: Error) => {
    if (/: 401 /.test(error.message)) return undefined
    throw error
  }), deadlineMs, 'a payment of the new merchant')))
  for (const id of ids) {
    const [, retried] = await received(receiver, id, 'payment.created', 2)
    const [succeeded] = await received(receiver, id, 'payment.succeeded')
    const versions = receiver.forCheckout(id).map((r) => r.body.version)
    t.same(versions, [...versions].sort((a, b) => a - b), `${id}: versions never go backwards (${versions.join(',')})`)
    t.ok(succeeded!.receivedAtMs >= retried!.answeredAtMs!, `${id}: version ${succeeded!.body.version} sent only after version 1 was answered 200`)
  }
})

t.test('an endpoint of one merchant never gets another merchant\'s events or objects', async (t) => {
  const demo = await withEndpoint(t, demoKey)
  const other = await withEndpoint(t, otherKey)
  const demoId = await pay(demoKey)
  const otherId = await pay(otherKey)
  await received(demo.receiver, demoId, 'payment.succeeded')
  await received(other.receiver, otherId, 'payment.succeeded')
  t.equal(other.receiver.forCheckout(demoId).length, 0, 'merchant_other got none of merchant_demo\'s')
  t.equal(demo.receiver.forCheckout(otherId).length, 0, 'merchant_demo got none of merchant_other\'s')
  // Nor through the API: another merchant's endpoint and event are 404, like unknown ones.
  const demoEvent = (await received(demo.receiver, demoId, 'payment.succeeded'))[0]!.body.id
  t.match(await notifierCall(stack.publicUrl, otherKey, 'DELETE', `/webhook_endpoints/${demo.id}`), { status: 404, body: { code: 'webhook_endpoint_not_found' } })
  t.match(await notifierCall(stack.publicUrl, otherKey, 'POST', `/webhook_endpoints/${demo.id}/roll_secret`), { status: 404 })
  t.match(await notifierCall(stack.publicUrl, otherKey, 'POST', `/events/${demoEvent}/redeliver`), { status: 404, body: { code: 'event_not_found' } })
  t.match(await notifierCall(stack.publicUrl, otherKey, 'GET', `/events?starting_after=${demoEvent}`), { status: 400, body: { errors: [{ field: 'starting_after', code: 'unknown' }] } })
  const otherList = await notifierCall(stack.publicUrl, otherKey, 'GET', '/webhook_endpoints')
  t.notOk(otherList.body.data.some((e: any) => e.id === demo.id), 'merchant_other lists only its own endpoints')
  const otherEvents = await notifierCall(stack.publicUrl, otherKey, 'GET', `/events?checkout_id=${demoId}`)
  t.same(otherEvents.body.data, [])
})

t.test('a hanging endpoint of one merchant does not hold back another merchant\'s deliveries', async (t) => {
  // merchant_other's receiver never answers in time: its attempts fill its per-endpoint slots
  // and each ends only at the notifier's delivery timeout.
  const slow = await withEndpoint(t, otherKey, () => ({ status: 200, delayMs: 60_000 }))
  const fast = await withEndpoint(t, demoKey, undefined, ['payment.succeeded'])
  const slowIds = await Promise.all(Array.from({ length: 6 }, () => pay(otherKey)))
  const firstSlow = await pollUntil('the hanging endpoint holding requests', () => {
    const held = slow.receiver.received.filter((r) => slowIds.includes(r.body?.checkout_id))
    return held.length >= 4 ? held : undefined
  }, deadlineMs)
  const id = await pay(demoKey)
  const [hook] = await received(fast.receiver, id, 'payment.succeeded')
  const at = hook!.receivedAtMs
  const hanging = slow.receiver.received.filter((r) => r.receivedAtMs <= at && (r.abortedAtMs ?? Number.POSITIVE_INFINITY) > at)
  t.ok(hanging.length >= 1, `merchant_demo's event was delivered while ${hanging.length} of merchant_other's requests hung`)
  t.ok(firstSlow.length >= 4 && slow.receiver.received.every((r) => r.answeredAtMs === undefined), 'the hanging endpoint answered nothing')
})

t.test('private and other non-public URLs are refused at registration, even in dev mode', async (t) => {
  for (const url of ['http://10.0.0.1/hooks', 'http://169.254.169.254/latest/meta-data', 'http://[::ffff:a00:1]/x', 'http://192.168.0.10/', 'http://[fd00::1]/', 'http://0.0.0.0:80/']) {
    const res = await notifierCall(stack.publicUrl, demoKey, 'POST', '/webhook_endpoints', { url, events: ['*'] })
    t.match(res, { status: 400, body: { code: 'webhook_url_not_allowed', reason: 'address_not_public' } }, `${url} refused`)
  }
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/webhook_endpoints', { url: 'ftp://example.com/', events: ['*'] }), { status: 400, body: { reason: 'scheme_not_allowed' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/webhook_endpoints', { url: 'http://u:p@127.0.0.1/', events: ['*'] }), { status: 400, body: { reason: 'credentials_in_url' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/webhook_endpoints', { url: 'http://127.0.0.1/', events: ['payment.nope'] }), { status: 400, body: { code: 'validation_failed' } })
  t.match(await notifierCall(stack.publicUrl, readKey, 'POST', '/webhook_endpoints', { url: 'http://127.0.0.1/', events: ['*'] }), { status: 403, body: { code: 'api_key_scope_insufficient' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/webhook_endpoints', { url: 'http://127.0.0.1/4111-1111-1111-1111', events: ['*'] }), { status: 400, body: { code: 'card_number_detected' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'GET', '/events?checkout_id=4111111111111111'), { status: 400, body: { code: 'card_number_detected' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/events/evt_x/redeliver', { endpoint_id: '4111\u00201111 1111 1111' }), { status: 400, body: { code: 'card_number_detected' } })
  t.equal(stack.notifier?.devAllowLoopback, true, 'the stack runs the notifier in dev mode (loopback allowed; unit tests cover production mode)')
})

t.test('a rolled secret: both sign during the grace period, only the new one after it ends', async (t) => {
  const { receiver, id: endpointId, secret: first } = await withEndpoint(t, demoKey, undefined, ['payment.succeeded'])
  const rolled = await notifierCall(stack.publicUrl, demoKey, 'POST', `/webhook_endpoints/${endpointId}/roll_secret`, { grace_period_s: 3600 })
  t.equal(rolled.status, 200)
  const second = rolled.body.secret as string
  t.match(second, /^whsec_/)
  t.not(second, first)
  t.ok(rolled.body.previous_secret_expires_at, 'the grace period is shown')
  const listed = await notifierCall(stack.publicUrl, demoKey, 'GET', '/webhook_endpoints')
  t.notOk(JSON.stringify(listed.body).includes('whsec_'), 'a listing never shows a secret')
  const id = await pay(demoKey)
  const [hook] = await received(receiver, id, 'payment.succeeded')
  const header = hook!.headers['ringpay-signature'] as string
  t.equal(header.split(',').filter((p) => p.startsWith('v1=')).length, 2, 'two v1 signatures')
  t.same(verifyWebhookSignature(second, header, hook!.raw, nowS(), 300), { ok: true }, 'the new secret verifies')
  t.same(verifyWebhookSignature(first, header, hook!.raw, nowS(), 300), { ok: true }, 'the old secret still verifies')
  const ended = await notifierCall(stack.publicUrl, demoKey, 'POST', `/webhook_endpoints/${endpointId}/roll_secret`, { grace_period_s: 0 })
  const third = ended.body.secret as string
  t.notOk(ended.body.previous_secret_expires_at)
  const id2 = await pay(demoKey)
  const [hook2] = await received(receiver, id2, 'payment.succeeded')
  const header2 = hook2!.headers['ringpay-signature'] as string
  t.equal(header2.split(',').filter((p) => p.startsWith('v1=')).length, 1)
  t.same(verifyWebhookSignature(third, header2, hook2!.raw, nowS(), 300), { ok: true })
  t.same(verifyWebhookSignature(second, header2, hook2!.raw, nowS(), 300), { ok: false, reason: 'mismatch' })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', `/webhook_endpoints/${endpointId}/roll_secret`, { grace_period_s: -1 }), { status: 400 })
})

t.test('an endpoint that keeps failing is disabled, with the reason in GET /webhook_endpoints', async (t) => {
  const { receiver, id: endpointId } = await withEndpoint(t, demoKey, () => ({ status: 503 }))
  const id = await pay(demoKey)
  const disabled = await pollUntil('the endpoint disabled', async () => {
    const res = await notifierCall(stack.publicUrl, demoKey, 'GET', '/webhook_endpoints')
    const endpoint = res.body.data.find((e: any) => e.id === endpointId)
    return endpoint?.status === 'disabled' ? endpoint : undefined
  }, deadlineMs)
  t.match(disabled.disabled_reason, /failed attempts in a row since .*HTTP 503/, disabled.disabled_reason)
  t.ok(disabled.disabled_at)
  t.ok(receiver.forCheckout(id).length >= 1, 'it was tried')
  // Nothing more is sent to it, and redelivering to it is refused.
  const event = (await notifierCall(stack.publicUrl, demoKey, 'GET', `/events?checkout_id=${id}`)).body.data[0]
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', `/events/${event.id}/redeliver`, { endpoint_id: endpointId }), { status: 409, body: { code: 'webhook_endpoint_disabled' } })
  t.match(event.deliveries.find((d: any) => d.endpoint_id === endpointId), { status: 'failed' }, 'what it missed is failed, not left pending')
  // Fixed and enabled again, it gets what it missed when the merchant redelivers it.
  receiver.responder = () => ({ status: 200 })
  const enabled = await notifierCall(stack.publicUrl, demoKey, 'POST', `/webhook_endpoints/${endpointId}/enable`)
  t.match(enabled, { status: 200, body: { id: endpointId, status: 'enabled' } })
  t.notOk('disabled_reason' in enabled.body)
  const before = receiver.forCheckout(id).length
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', `/events/${event.id}/redeliver`, { endpoint_id: endpointId }), { status: 202 })
  await pollUntil('the redelivered event answered 200', () => receiver.forCheckout(id).slice(before).find((r) => r.body.id === event.id && r.answeredAtMs !== undefined), deadlineMs)
  t.match(await notifierCall(stack.publicUrl, otherKey, 'POST', `/webhook_endpoints/${endpointId}/enable`), { status: 404 }, 'not by another merchant')
})

t.test('redeliver: the same event again, to its endpoints or to one named', async (t) => {
  const { receiver, id: endpointId } = await withEndpoint(t, demoKey, undefined, ['payment.succeeded'])
  const id = await pay(demoKey)
  const [hook] = await received(receiver, id, 'payment.succeeded')
  const eventId = hook!.body.id as string
  const res = await notifierCall(stack.publicUrl, demoKey, 'POST', `/events/${eventId}/redeliver`)
  t.match(res, { status: 202, body: { id: eventId, endpoint_ids: [endpointId] } })
  const [, again] = await received(receiver, id, 'payment.succeeded', 2)
  t.equal(again!.body.id, eventId)
  t.equal(again!.raw, hook!.raw)
  // An endpoint made after the event had no delivery of it: named, it gets one.
  const late = await withEndpoint(t, demoKey, undefined, ['payment.created'])
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', `/events/${eventId}/redeliver`, { endpoint_id: late.id }), { status: 202, body: { endpoint_ids: [late.id] } })
  const [lateHook] = await received(late.receiver, id, 'payment.succeeded')
  t.equal(lateHook!.body.id, eventId)
  t.match(await notifierCall(stack.publicUrl, demoKey, 'POST', '/events/evt_unknown/redeliver'), { status: 404, body: { code: 'event_not_found' } })
  t.match(await notifierCall(stack.publicUrl, readKey, 'POST', `/events/${eventId}/redeliver`), { status: 403 })
})

t.test('refund events, and the events list: newest first, keyset pages, filters', async (t) => {
  const { receiver } = await withEndpoint(t, demoKey)
  const id = await pay(demoKey)
  await received(receiver, id, 'payment.succeeded')
  const refund = await refundPayment(stack.publicUrl, demoKey, id, `whk-${id}`, { amount: 500 })
  t.equal(refund.status, 202)
  const [refunded] = await received(receiver, id, 'refund.succeeded')
  t.match(refunded!.body.data, { refund: { id: refund.body.id, status: 'succeeded', amount: 500 }, object: { checkout_id: id, amount_refunded: 500 } })
  await received(receiver, id, 'refund.created')
  // One event a page, for this payment: four pages, newest (highest version) first.
  const seen: any[] = []
  let after = ''
  for (let page = 0; page < 10; page++) {
    const res = await notifierCall(stack.publicUrl, readKey, 'GET', `/events?checkout_id=${id}&limit=1${after}`)
    t.equal(res.status, 200, 'a read key lists events')
    seen.push(...res.body.data)
    if (!res.body.has_more) break
    after = `&starting_after=${res.body.data.at(-1).id}`
  }
  t.same(seen.map((e) => e.type), ['refund.succeeded', 'refund.created', 'payment.succeeded', 'payment.created'])
  t.same(seen.map((e) => e.version), [...seen.map((e) => e.version)].sort((a, b) => b - a))
  // Every event of the merchant, three pages of 5: ordered by (created, id) descending, no repeats.
  const all: any[] = []
  after = ''
  for (let page = 0; page < 3; page++) {
    const res = await notifierCall(stack.publicUrl, demoKey, 'GET', `/events?limit=5${after}`)
    all.push(...res.body.data)
    if (!res.body.has_more) break
    after = `&starting_after=${res.body.data.at(-1).id}`
  }
  t.equal(new Set(all.map((e) => e.id)).size, all.length, 'no event on two pages')
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1], all[i]]
    t.ok(a.created > b.created || (a.created === b.created && a.id > b.id), `${a.id} before ${b.id}`)
  }
  t.match(await notifierCall(stack.publicUrl, demoKey, 'GET', '/events?limit=0'), { status: 400, body: { code: 'invalid_query' } })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'GET', '/events?type=nope'), { status: 400 })
  t.match(await notifierCall(stack.publicUrl, demoKey, 'GET', '/events?starting_after=evt_nope'), { status: 400 })
})

t.test('at most endpointsPerMerchantMax endpoints per merchant', async (t) => {
  const made: string[] = []
  t.teardown(async () => {
    for (const id of made) await notifierCall(stack.publicUrl, otherKey, 'DELETE', `/webhook_endpoints/${id}`)
  })
  for (let i = 0; i < 20; i++) {
    const res = await notifierCall(stack.publicUrl, otherKey, 'POST', '/webhook_endpoints', { url: 'http://127.0.0.1:9/nobody', events: ['refund.failed'] })
    if (res.status === 201) {
      made.push(res.body.id)
      continue
    }
    t.match(res, { status: 409, body: { code: 'webhook_endpoint_limit_reached' } })
    break
  }
  t.ok(made.length <= 16, `${made.length} made before the limit`)
})

t.test('nginx sends the notifier its paths, whatever the headers, and nothing else', async (t) => {
  const withHeader = await notifierCall(stack.publicUrl, demoKey, 'GET', '/events?limit=1', undefined, { 'x-payment-checkout-id': newCheckoutId('whk') })
  t.equal(withHeader.status, 200, '/events with a checkout-id header still goes to the notifier')
  t.equal(withHeader.body.url, '/events')
  const lookalike = await notifierCall(stack.publicUrl, demoKey, 'GET', '/eventsx', undefined, { 'x-payment-checkout-id': newCheckoutId('whk') })
  t.match(lookalike, { status: 404, body: { code: 'not_found' } }, 'a path that only starts like one is not the notifier\'s')
  t.match(await notifierCall(stack.publicUrl, undefined, 'GET', '/webhook_endpoints'), { status: 401, body: { code: 'unauthorized' } })
})
