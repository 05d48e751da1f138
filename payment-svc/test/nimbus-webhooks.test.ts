// Nimbus' batched notifications (issue #16): every item verified under the HMAC key before any is
// mapped; one bad item refuses the batch; items map to the statuses and refunds the node knows.

import t from 'tap'
import { signItem, type NotificationItem } from '../../nimbus-psp/signature.ts'
import { parseNimbusNotifications } from '../webhooks/nimbus.ts'

const key = 'nimbus-test-hmac-key-0123456789'

function signed (item: NotificationItem, with_ = key): { NotificationRequestItem: NotificationItem } {
  return { NotificationRequestItem: { ...item, additionalData: { ...item.additionalData, hmacSignature: signItem(with_, item) } } }
}

const authorisation: NotificationItem = {
  eventCode: 'AUTHORISATION', success: 'true', pspReference: 'ch_1', merchantAccountCode: 'm_nimbus', merchantReference: 'co_1',
  amount: { value: 1999, currency: 'NOK' }, eventDate: '2026-01-01T00:00:00.000Z',
}

t.test('a batch of signed items maps to the payment and its refund', async (t) => {
  const refund: NotificationItem = { ...authorisation, eventCode: 'REFUND', pspReference: 're_1', originalReference: 'ch_1', amount: { value: 500, currency: 'NOK' }, additionalData: { modificationReference: 'rf_ours' } }
  const events = parseNimbusNotifications(key, { live: 'false', notificationItems: [signed(authorisation), signed(refund)] })
  t.match(events[0], { pspEventId: 'AUTHORISATION-ch_1-true', target: 'succeeded', reference: 'co_1', pspReference: 'ch_1', amount: 1999, currency: 'NOK' })
  t.match(events[1], { target: undefined, pspReference: 're_1', refund: { id: 'rf_ours', target: 'succeeded' }, amount: 500 })
  t.equal(JSON.parse(events[0]!.payloadJson).additionalData.hmacSignature, signItem(key, authorisation), 'each item kept as received')
})

t.test('a refused authorisation carries its reason', async (t) => {
  const [event] = parseNimbusNotifications(key, { notificationItems: [signed({ ...authorisation, success: 'false', reason: 'card_declined: Your card was declined.' })] })
  t.match(event, { target: 'failed', failureCode: 'card_declined', failureMessage: 'Your card was declined.' })
})

t.test('one item signed with another key, or changed after signing, refuses the batch', async (t) => {
  t.throws(() => parseNimbusNotifications(key, { notificationItems: [signed(authorisation), signed({ ...authorisation, pspReference: 'ch_2' }, 'another-key-entirely-0123456789')] }),
    { code: 'webhook_signature_invalid' })
  const tampered = signed(authorisation)
  tampered.NotificationRequestItem.amount = { value: 1, currency: 'NOK' }
  t.throws(() => parseNimbusNotifications(key, { notificationItems: [tampered] }), { code: 'webhook_signature_invalid' })
  const unsigned = { NotificationRequestItem: authorisation }
  t.throws(() => parseNimbusNotifications(key, { notificationItems: [unsigned] }), { code: 'webhook_signature_invalid' })
})

t.test('a field holding the separator cannot shift another field into place', async (t) => {
  // "a:b" + "c" and "a" + "b:c" must not sign alike.
  const one = { ...authorisation, pspReference: 'ch_a', merchantReference: 'x:y' }
  const two = { ...authorisation, pspReference: 'ch_a:x', merchantReference: 'y' }
  t.not(signItem(key, one), signItem(key, two))
})

t.test('not a batch', async (t) => {
  t.throws(() => parseNimbusNotifications(key, { notificationItems: [] }), { code: 'validation_failed' })
  t.throws(() => parseNimbusNotifications(key, { id: 'evt_1', type: 'charge.succeeded' }), { code: 'validation_failed' })
  t.throws(() => parseNimbusNotifications(key, { notificationItems: [{ NotificationRequestItem: { ...authorisation, success: true } }] }), { code: 'validation_failed' })
})
