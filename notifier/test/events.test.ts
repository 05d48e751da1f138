// From change events to merchant events: which change makes which event type (none for a PSP
// webhook that changed nothing), a stable id per change event, the public payment shape, and the
// consumer's filtering of merchants without endpoints and of unreadable messages.

import { eventMacHeader, EventSigner, EventVerifier, newEventKey } from '../../lib/event-signing.ts'
import t from 'tap'
import type { ConsumedMessage } from '../../lib/event-bus.ts'
import { encodeChangeEvent, type ChangeEvent, type Payment } from '../../lib/payment-codec.ts'
import { createLogger } from '../../lib/log.ts'
import { paymentView } from '../../payment-svc/payment-view.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { readChangeEventMerchantId } from '../../cdc-relay/event-header.ts'
import { handleMessages, merchantEventsOf } from '../consumer.ts'
import { EventWriter } from '../event-writer.ts'
import { merchantEventId, merchantEventOf, merchantEventTypeOf } from '../events.ts'

const log = createLogger('notifier-test')
log.level = 'silent'

function payment (overrides: Partial<Payment> = {}): Payment {
  return {
    checkoutId: 'co_evt', merchantId: 'merchant_demo', amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: 'd',
    customerRef: 'c1', metadata: { order: '7' }, status: 'pending', version: 1, createdAtMs: 1_796_000_000_000, updatedAtMs: 1_796_000_000_000,
    requestHash: new Uint8Array(32), failureCode: '', failureMessage: '', pspReference: '', nodeId: 'n1', refunds: [], ...overrides,
  }
}

function change (type: ChangeEvent['type'], p: Payment, overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    eventId: `n1:${p.version}`, nodeId: 'n1', sequence: p.version, type, checkoutId: p.checkoutId, version: p.version,
    occurredAtMs: p.updatedAtMs, payment: p, previousStatus: undefined, actor: 'api', webhook: undefined, refundId: '', ...overrides,
  }
}

const refund = {
  id: 're_1', amount: 500, status: 'succeeded' as const, reason: '', idempotencyKey: 'k', requestHash: new Uint8Array(32),
  createdAtMs: 1_796_000_001_000, updatedAtMs: 1_796_000_002_000, pspReference: 're_psp', failureCode: '', failureMessage: '',
}

t.test('event types', (t) => {
  t.equal(merchantEventTypeOf(change('payment.created', payment())), 'payment.created')
  for (const status of ['succeeded', 'failed', 'canceled', 'requires_action', 'processing'] as const) {
    t.equal(merchantEventTypeOf(change('payment.status_changed', payment({ status, version: 3 }))), `payment.${status}`)
  }
  t.equal(merchantEventTypeOf(change('payment.webhook_received', payment({ status: 'succeeded' }))), undefined, 'a webhook that changed nothing')
  const refunded = payment({ status: 'succeeded', version: 5, refunds: [{ ...refund, status: 'pending' }] })
  t.equal(merchantEventTypeOf(change('payment.refund_created', refunded, { refundId: 're_1' })), 'refund.created')
  t.equal(merchantEventTypeOf(change('payment.refund_updated', refunded, { refundId: 're_1' })), undefined, 'still pending')
  t.equal(merchantEventTypeOf(change('payment.refund_updated', payment({ refunds: [refund] }), { refundId: 're_1' })), 'refund.succeeded')
  t.equal(merchantEventTypeOf(change('payment.refund_updated', payment({ refunds: [{ ...refund, status: 'failed' }] }), { refundId: 're_1' })), 'refund.failed')
  // Manual capture (issue #14): authorized, the capture asked for, then succeeded (with amount_captured).
  const authorized = payment({ status: 'requires_capture', version: 3, captureMethod: 'manual', pspReference: 'ch_1' })
  t.equal(merchantEventTypeOf(change('payment.status_changed', authorized)), 'payment.requires_capture')
  const asked = { ...authorized, version: 4, amountToCapture: 1500 }
  t.equal(merchantEventTypeOf(change('payment.capture_requested', asked)), 'payment.capture_requested')
  const captured = { ...asked, version: 5, status: 'succeeded' as const, amountCaptured: 1500 }
  t.equal(merchantEventTypeOf(change('payment.status_changed', captured)), 'payment.succeeded')
  t.match(JSON.parse(merchantEventOf(change('payment.status_changed', captured))!.body).data.object,
    { status: 'succeeded', capture_method: 'manual', amount_captured: 1500, amount_to_capture: 1500 })
  t.end()
})

t.test('the event: stable id from the change event, the public payment shape, the refund', (t) => {
  const p = payment({ status: 'succeeded', version: 4, refunds: [refund], pspReference: 'ch_1' })
  const c = change('payment.refund_updated', p, { refundId: 're_1' })
  const event = merchantEventOf(c)!
  t.equal(event.id, merchantEventId('n1:4', 'co_evt'))
  t.match(event.id, /^evt_[a-p]{32}$/, 'letters only: never a card-shaped run of digits')
  t.equal(merchantEventOf(c)!.body, event.body, 'the same change makes the same bytes')
  t.not(merchantEventId('n1:4', 'co_other'), event.id)
  const body = JSON.parse(event.body)
  t.match(body, { id: event.id, object: 'event', type: 'refund.succeeded', checkout_id: 'co_evt', version: 4, created: new Date(p.updatedAtMs).toISOString() })
  t.same(body.data.object, JSON.parse(JSON.stringify(paymentView(p))))
  t.match(body.data.refund, { id: 're_1', object: 'refund', status: 'succeeded', amount: 500 })
  t.notOk('merchant_id' in body.data.object || 'node_id' in body.data.object, 'nothing of the internal view')
  t.end()
})

// Node n1's event-signing key, as the relays sign and the notifier verifies (issue #17 part 3).
const eventKeys = { keys: [newEventKey('n1-k1', 'n1')] }
const verifier = new EventVerifier(eventKeys)
const n1 = new EventSigner('n1-k1', eventKeys.keys[0]!.key)

function message (c: ChangeEvent, offset: number, signer: EventSigner | null = n1): ConsumedMessage {
  const value = encodeChangeEvent(c, testKeyRing)
  return { topic: 'payments.events', partition: 0, offset: String(offset), key: c.checkoutId, value,
    headers: { 'event-type': c.type, ...(signer === null ? {} : { [eventMacHeader]: signer.sign(value) }) } }
}

t.test('the consumer: merchants without endpoints, unreadable messages, no-op webhooks are skipped', async (t) => {
  const mine = change('payment.created', payment())
  const theirs = change('payment.created', payment({ checkoutId: 'co_b', merchantId: 'merchant_other' }))
  const webhook = change('payment.webhook_received', payment({ version: 1 }))
  const broken: ConsumedMessage = { ...message(mine, 3), value: new Uint8Array([1, 2, 3]) }
  let poison = 0
  const events = merchantEventsOf({ sealer: testKeyRing, log, verifier, wanted: (m) => m === 'merchant_demo', onPoison: () => { poison++ } },
    [message(mine, 0), message(theirs, 1), message(webhook, 2), broken])
  t.same(events.map((e) => e.checkoutId), ['co_evt'])
  t.equal(poison, 1, 'the unreadable message is skipped and counted')
})

t.test('the consumer: an unwanted merchant\'s event is dropped before its MAC check and decode', async (t) => {
  const theirs = change('payment.created', payment({ checkoutId: 'co_b', merchantId: 'merchant_other' }))
  const mine = change('payment.created', payment())
  const verified: string[] = []
  const spy = { verify: (nodeId: string, value: Uint8Array, mac: string | undefined) => { verified.push(nodeId); return verifier.verify(nodeId, value, mac) } }
  const events = merchantEventsOf({ sealer: testKeyRing, log, verifier: spy, wanted: (m) => m === 'merchant_demo' },
    [message(theirs, 0, null), message(mine, 1)])
  t.same(events.map((e) => e.checkoutId), ['co_evt'])
  t.same(verified, ['n1'], 'only the wanted merchant\'s event was verified (the other, unsigned, was never looked at)')
  t.equal(readChangeEventMerchantId(message(theirs, 0).value), 'merchant_other')
  const withRefund = change('payment.refund_created', payment({ merchantId: 'm_ref', status: 'succeeded', version: 5, refunds: [{ ...refund, status: 'pending' }] }), { refundId: 're_1' })
  t.equal(readChangeEventMerchantId(message(withRefund, 0).value), 'm_ref')
})

t.test('the consumer: an event no node signed makes no merchant event (it could reach a merchant, signed by us)', async (t) => {
  const forged = change('payment.status_changed', payment({ status: 'succeeded', version: 9 }))
  const otherKey = new EventSigner('n1-k1', newEventKey('n1-k1', 'n1').key)
  const refused: string[] = []
  const events = merchantEventsOf({ sealer: testKeyRing, log, verifier, wanted: () => true, onRefused: (code) => refused.push(code) },
    [message(forged, 0, null), message(forged, 1, otherKey), message({ ...forged, eventId: 'n1:1' }, 2)])
  t.same(events, [], 'none of them becomes a merchant event')
  t.same(refused, ['event_mac_missing', 'event_mac_invalid', 'event_identity_mismatch'])
})

t.test('the consumer: a message is finished only once its batch\'s events are written', async (t) => {
  const c = change('payment.created', payment())
  let release: () => void = () => {}
  const written = new Promise<void>((resolve) => { release = resolve })
  const submitted: string[][] = []
  const done = handleMessages({
    sealer: testKeyRing, log, verifier, wanted: () => true,
    submit: async (events) => { submitted.push(events.map((e) => e.checkoutId)); await written },
  }, [message(c, 0), message(c, 1)])
  t.equal(done.length, 2, 'one promise per message')
  let finished = false
  void Promise.all(done).then(() => { finished = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(finished, 'not finished (not committable) before the write')
  release()
  await Promise.all(done)
  t.same(submitted, [['co_evt', 'co_evt']])
})

t.test('the event writer: one statement at a time, in submission order, coalesced, retried until written', async (t) => {
  const ev = (checkoutId: string, version: number) => merchantEventOf(change('payment.created', payment({ checkoutId, version })))!
  const statements: string[][] = []
  let failures = 1
  let inFlight = 0
  const writer = new EventWriter(async (events) => {
    inFlight++
    t.equal(inFlight, 1, 'one statement at a time')
    await new Promise((resolve) => setImmediate(resolve))
    inFlight--
    if (failures-- > 0) throw new Error('postgres down')
    statements.push(events.map((e) => `${e.checkoutId}@${e.version}`))
    return events.length
  }, { eventsPerStatementMax: 3, retryBaseDelayMs: 1, retryDelayMsMax: 2 }, log)
  const a = writer.submit([ev('a', 1)])
  const b = writer.submit([ev('a', 3), ev('b', 1)])
  const dup = writer.submit([ev('b', 1)])
  const c = writer.submit([ev('c', 1), ev('c', 2)])
  await Promise.all([a, b, dup, c])
  t.same(statements, [['a@1'], ['a@3', 'b@1'], ['c@1', 'c@2']],
    'the failed first statement retried alone; then what waited, up to the bound, a duplicate id once; order kept')
  await writer.submit([])
})
