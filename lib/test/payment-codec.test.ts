// The hand-written Payment and ChangeEvent encoders must produce exactly protobufjs' bytes (the
// relay publishes them unchanged; processors and tools decode them with protobufjs).

import t from 'tap'
import { prng } from '../../test/helpers/prng.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { FieldCryptoError, KeyRing, newFieldKey, sealedKeyId, withNewActiveKey } from '../field-crypto.ts'
import {
  decodeChangeEvent, decodePayment, encodeChangeEvent, encodePayment, referenceEncoders, paymentStatuses, eventTypes, refundStatuses,
  sealedPartsOf, paymentFieldsContext, type ChangeEvent, type Payment, type Refund,
} from '../payment-codec.ts'

const ring = testKeyRing

const alphabets = ['abcXYZ_-0189', 'é€ü', '😀', ' \t\n"\\', 'x'.repeat(10)]

function text (random: () => number, lengthMax: number): string {
  const length = Math.floor(random() * random() * (lengthMax + 1))
  let out = ''
  for (let i = 0; i < length; i++) {
    const alphabet = alphabets[Math.floor(random() * (random() < 0.8 ? 1 : alphabets.length))]!
    const chars = [...alphabet]
    out += chars[Math.floor(random() * chars.length)]
  }
  return out
}

function integer (random: () => number): number {
  const pick = random()
  if (pick < 0.2) return 1 + Math.floor(random() * 127)
  if (pick < 0.4) return 128 + Math.floor(random() * 20_000)
  if (pick < 0.6) return Number.MAX_SAFE_INTEGER - Math.floor(random() * 1000)
  return 1 + Math.floor(random() * 2 ** (1 + Math.floor(random() * 52)))
}

function refunds (random: () => number, amount: number): Refund[] {
  const out: Refund[] = []
  if (random() < 0.6) return out
  let left = amount
  const count = 1 + Math.floor(random() * 4)
  for (let i = 0; i < count && left > 0; i++) {
    const refundAmount = 1 + Math.floor(random() * left)
    const status = refundStatuses[Math.floor(random() * refundStatuses.length)]!
    if (status !== 'failed') left -= refundAmount
    out.push({
      id: 're_' + text(random, 26),
      amount: refundAmount,
      status,
      reason: random() < 0.5 ? '' : text(random, 100),
      idempotencyKey: text(random, 60),
      requestHash: Uint8Array.from({ length: 32 }, () => Math.floor(random() * 256)),
      createdAtMs: 1_763_919_000_000 + Math.floor(random() * 1e9),
      updatedAtMs: random() < 0.1 ? 0 : 1_763_919_000_000 + Math.floor(random() * 1e9),
      pspReference: random() < 0.5 ? '' : text(random, 40),
      failureCode: random() < 0.7 ? '' : text(random, 20),
      failureMessage: random() < 0.7 ? '' : text(random, 200),
    })
  }
  return out
}

function payment (random: () => number): Payment {
  const metadata: Record<string, string> = {}
  const keys = Math.floor(random() * 4)
  for (let i = 0; i < keys; i++) metadata[`k${i}_${text(random, 10)}`] = text(random, random() < 0.1 ? 500 : 30)
  const amount = integer(random)
  const status = paymentStatuses[Math.floor(random() * paymentStatuses.length)]!
  // Manual capture (issue #14): what was captured bounds the refunds.
  const manual = random() < 0.3
  const amountCaptured = manual && status === 'succeeded' && random() < 0.8 ? 1 + Math.floor(random() * amount) : 0
  return {
    checkoutId: 'co_' + text(random, 60),
    merchantId: text(random, 20),
    amount,
    currency: 'EUR',
    paymentMethod: text(random, 40),
    description: text(random, random() < 0.1 ? 500 : 40),
    customerRef: text(random, 128),
    metadata,
    status,
    version: integer(random),
    createdAtMs: random() < 0.05 ? 0 : 1_763_919_000_000 + Math.floor(random() * 1e9),
    updatedAtMs: 1_763_919_000_000 + Math.floor(random() * 1e9),
    requestHash: Uint8Array.from({ length: 32 }, () => Math.floor(random() * 256)),
    failureCode: random() < 0.5 ? '' : text(random, 20),
    failureMessage: random() < 0.5 ? '' : text(random, 200),
    pspReference: random() < 0.5 ? '' : text(random, 40),
    nodeId: random() < 0.1 ? '' : 'n' + Math.floor(random() * 10),
    refunds: refunds(random, manual ? amountCaptured : amount),
    ...(random() < 0.3 ? { nextActionUrl: 'https://psp.example/challenge/ch_' + text(random, 40) } : {}),
    // Issue #16: the routed PSP (field 25), absent on payments written before routing.
    ...(random() < 0.5 ? { pspProvider: random() < 0.5 ? 'sandbox' : 'nimbus' } : {}),
    ...(manual
      ? {
          captureMethod: 'manual' as const,
          ...(amountCaptured > 0 ? { amountCaptured } : {}),
          ...(amountCaptured > 0 || random() < 0.5 ? { amountToCapture: amountCaptured > 0 ? amountCaptured : 1 + Math.floor(random() * amount) } : {}),
        }
      : {}),
  }
}

function event (random: () => number, p: Payment): ChangeEvent {
  const sequence = integer(random)
  return {
    eventId: `${p.nodeId}:${sequence}`,
    nodeId: p.nodeId,
    sequence,
    type: eventTypes[Math.floor(random() * eventTypes.length)]!,
    checkoutId: p.checkoutId,
    version: p.version,
    occurredAtMs: p.updatedAtMs,
    payment: p,
    previousStatus: random() < 0.3 ? undefined : paymentStatuses[Math.floor(random() * paymentStatuses.length)]!,
    actor: random() < 0.1 ? '' : text(random, 20),
    webhook: random() < 0.7
      ? undefined
      : {
          provider: 'sandbox',
          pspEventId: text(random, 30),
          type: text(random, 30),
          payloadJson: text(random, 300),
          applied: random() < 0.5,
          note: random() < 0.5 ? '' : text(random, 20),
          receivedAtMs: random() < 0.1 ? 0 : 1_763_919_000_000 + Math.floor(random() * 1e9),
        },
    refundId: p.refunds.length === 0 || random() < 0.3 ? '' : p.refunds[0]!.id,
  }
}

t.test('hand-written encoders produce protobufjs bytes', async (t) => {
  const seed = Number(process.env.CODEC_SEED ?? 20261123)
  const random = prng(seed)
  let mismatches = 0
  for (let i = 0; i < 3000; i++) {
    const p = payment(random)
    const e = event(random, p)
    const paymentBytes = encodePayment(p, ring)
    // A seal is random: the reference encodes with the same sealed bytes.
    const { sealedFields } = sealedPartsOf(paymentBytes, 'payment')
    if (Buffer.compare(paymentBytes, referenceEncoders.payment(p, sealedFields)) !== 0) {
      mismatches++
      t.fail(`payment ${i} (seed ${seed}) differs`, { payment: p })
    }
    const eventBytes = encodeChangeEvent(e, ring, paymentBytes)
    const { payloadSealed } = sealedPartsOf(eventBytes, 'changeEvent')
    if (Buffer.compare(eventBytes, referenceEncoders.changeEvent(e, sealedFields, payloadSealed)) !== 0) {
      mismatches++
      t.fail(`event ${i} (seed ${seed}) differs`, { event: e })
    }
    // A payment is sealed once: encoding it again embeds the same bytes (a webhook body is sealed anew).
    if (e.webhook === undefined && Buffer.compare(eventBytes, encodeChangeEvent(e, ring)) !== 0) t.fail(`event ${i}: embedded payment bytes differ from encoding it`)
    if (mismatches > 5) break
  }
  t.equal(mismatches, 0)
})

t.test('round trip', async (t) => {
  const random = prng(7)
  const p = payment(random)
  const e = event(random, p)
  t.same(decodePayment(encodePayment(p, ring), ring), p)
  const decoded = decodeChangeEvent(encodeChangeEvent(e, ring), ring)
  t.same(decoded.payment, p)
  t.equal(decoded.sequence, e.sequence)
  t.equal(decoded.actor, e.actor)
  t.same(decoded.webhook, e.webhook)
})

t.test('refunds round trip, and refunds beyond the amount are refused', async (t) => {
  const random = prng(11)
  let p = payment(random)
  while (p.refunds.length < 2 || p.captureMethod === 'manual') p = payment(random)
  const decoded = decodePayment(encodePayment(p, ring), ring)
  t.same(decoded.refunds, p.refunds)
  const e = { ...event(random, p), type: 'payment.refund_created' as const, refundId: p.refunds[1]!.id }
  t.equal(decodeChangeEvent(encodeChangeEvent(e, ring), ring).refundId, p.refunds[1]!.id)
  const refund = p.refunds[0]!
  t.throws(() => encodePayment({ ...p, refunds: [{ ...refund, status: 'pending', amount: p.amount }, { ...refund, id: 're_2', status: 'succeeded', amount: 1 }] }, ring),
    /refunds exceed the captured amount/)
  // A failed refund holds nothing back.
  t.doesNotThrow(() => encodePayment({ ...p, refunds: [{ ...refund, status: 'failed', amount: p.amount }, { ...refund, id: 're_2', status: 'succeeded', amount: p.amount }] }, ring))
  t.throws(() => encodePayment({ ...p, refunds: [{ ...refund, amount: 0 }] }, ring), /bad refund amount/)
})

t.test('manual capture: the fields round trip; an automatic payment\'s bytes carry none of them', async (t) => {
  const random = prng(21)
  let p = payment(random)
  while (p.captureMethod === 'manual' || p.status !== 'succeeded') p = payment(random)
  const automatic = encodePayment(p, ring)
  const manual: Payment = { ...p, captureMethod: 'manual', amountToCapture: p.amount, amountCaptured: p.amount, refunds: [] }
  const manualBytes = encodePayment(manual, ring)
  t.same(decodePayment(manualBytes, ring), manual)
  const { sealedFields } = sealedPartsOf(manualBytes, 'payment')
  t.same(Buffer.from(manualBytes), Buffer.from(referenceEncoders.payment(manual, sealedFields)), 'protobufjs\' bytes')
  t.ok(manualBytes.length > automatic.length, 'the fields cost bytes only when set')
  t.same(decodePayment(automatic, ring).captureMethod, undefined)
  const authorized: Payment = { ...p, status: 'requires_capture', captureMethod: 'manual', refunds: [] }
  t.same(decodePayment(encodePayment(authorized, ring), ring), authorized)
})

t.test('manual capture: never more captured or refunded than authorized and captured', async (t) => {
  const p: Payment = { ...payment(prng(22)), amount: 1000, status: 'succeeded', captureMethod: 'manual', amountToCapture: 600, amountCaptured: 600, refunds: [] }
  t.doesNotThrow(() => encodePayment(p, ring))
  t.throws(() => encodePayment({ ...p, amountCaptured: 1001 }, ring), /captured more than authorized/)
  t.throws(() => encodePayment({ ...p, amountToCapture: 1001 }, ring), /capture request beyond the authorized amount/)
  t.throws(() => encodePayment({ ...p, status: 'requires_capture' }, ring), /captured but requires_capture/)
  const refund: Refund = {
    id: 're_1', amount: 600, status: 'succeeded', reason: '', idempotencyKey: 'k', requestHash: new Uint8Array(32),
    createdAtMs: 1, updatedAtMs: 1, pspReference: '', failureCode: '', failureMessage: '',
  }
  t.doesNotThrow(() => encodePayment({ ...p, refunds: [refund] }, ring), 'the captured amount may be refunded')
  t.throws(() => encodePayment({ ...p, refunds: [{ ...refund, amount: 601 }] }, ring), /refunds exceed the captured amount/,
    'not more, though the authorization was larger')
})

t.test('bad values are refused, not encoded', async (t) => {
  const p = payment(prng(3))
  t.throws(() => encodePayment({ ...p, amount: -1 }, ring), /bad amount/)
  t.throws(() => encodePayment({ ...p, amount: 1.5 }, ring), /bad amount/)
  t.throws(() => encodePayment({ ...p, createdAtMs: -5 }, ring), /varint/)
  t.throws(() => encodePayment({ ...p, requestHash: new Uint8Array(3) }, ring), /bad request hash/)
  t.throws(() => encodeChangeEvent({ ...event(prng(3), p), sequence: 0 }, ring), /bad event sequence/)
})

// --- Data at rest (issue #17 part 7) ---

function sensitivePayment (): Payment {
  return {
    ...payment(prng(11)),
    checkoutId: 'co_sealed_1',
    merchantId: 'merchant_demo',
    paymentMethod: 'pm_card_visa_sealed_token',
    customerRef: 'cust_sealed_ref_42',
    metadata: { order_secret: 'order-7731-sealed' },
  }
}
const clearMarkers = ['pm_card_visa_sealed_token', 'cust_sealed_ref_42', 'order_secret', 'order-7731-sealed']

t.test('stored bytes hold no payment method, customer ref, metadata or webhook body in clear', async (t) => {
  const p = sensitivePayment()
  const e: ChangeEvent = {
    ...event(prng(12), p),
    webhook: { provider: 'sandbox', pspEventId: 'evt_1', type: 'charge.succeeded', payloadJson: '{"secret_body":"wh-body-9911"}', applied: true, note: '', receivedAtMs: 1 },
  }
  const paymentBytes = Buffer.from(encodePayment(p, ring))
  const eventBytes = Buffer.from(encodeChangeEvent(e, ring))
  for (const marker of [...clearMarkers, 'wh-body-9911', 'secret_body']) {
    t.notOk(paymentBytes.includes(marker), `payment bytes without ${marker}`)
    t.notOk(eventBytes.includes(marker), `event bytes without ${marker}`)
  }
  t.equal(sealedKeyId(sealedPartsOf(paymentBytes, 'payment').sealedFields), ring.activeKeyId)
  const decoded = decodeChangeEvent(eventBytes, ring)
  t.same(decoded.payment, p)
  t.equal(decoded.webhook?.payloadJson, '{"secret_body":"wh-body-9911"}')
})

t.test('a sealed value moved to another payment, tampered, or under an unknown key is refused, typed', async (t) => {
  const p = sensitivePayment()
  const bytes = encodePayment(p, ring)
  const { sealedFields } = sealedPartsOf(bytes, 'payment')
  // The same sealed fields spliced into another payment's record (what a disk writer could do).
  const other = { ...p, checkoutId: 'co_sealed_2', metadata: {} }
  const spliced = referenceEncoders.payment(other, sealedFields)
  t.throws(() => decodePayment(spliced, ring), { name: 'FieldCryptoError', code: 'sealed_value_auth_failed' })
  const otherMerchant = referenceEncoders.payment({ ...p, merchantId: 'merchant_other', metadata: {} }, sealedFields)
  t.throws(() => decodePayment(otherMerchant, ring), { code: 'sealed_value_auth_failed' })
  const tampered = Buffer.from(sealedFields)
  tampered[tampered.length - 20]! ^= 0x40
  t.throws(() => decodePayment(referenceEncoders.payment({ ...p, metadata: {} }, tampered), ring), { code: 'sealed_value_auth_failed' })
  const stranger = new KeyRing({ active: 'x1', keys: [newFieldKey('x1')] })
  t.throws(() => decodePayment(bytes, stranger), { code: 'field_key_unknown' })
  // A schema 2 record whose clear fields are filled in is refused before anything is opened.
  const forged = referenceEncoders.payment({ ...p, metadata: {} }, sealedFields)
  const withClear = Buffer.concat([Buffer.from(forged), Buffer.from([0x32, 3, 0x70, 0x6d, 0x5f])]) // field 6 = 'pm_'
  t.throws(() => decodePayment(withClear, ring), /clear sensitive fields/)
  t.ok(FieldCryptoError)
})

t.test('rotation: records sealed under the old key still read; new ones use the new key', async (t) => {
  const first = { active: 'r1', keys: [newFieldKey('r1')] }
  const before = new KeyRing(first)
  const oldBytes = encodePayment(sensitivePayment(), before)
  const after = new KeyRing(withNewActiveKey(first, newFieldKey('r2')))
  t.same(decodePayment(oldBytes, after), sensitivePayment(), 'old record opens under the rotated ring')
  const fresh = encodePayment({ ...sensitivePayment(), metadata: { ...sensitivePayment().metadata } }, after)
  t.equal(sealedKeyId(sealedPartsOf(fresh, 'payment').sealedFields), 'r2')
  // A transition of an old payment keeps its sealed fields as they are (sealed once per payment).
  const read = decodePayment(oldBytes, after)
  const moved = encodePayment({ ...read, status: 'processing', version: read.version + 1 }, after)
  t.equal(sealedKeyId(sealedPartsOf(moved, 'payment').sealedFields), 'r1')
  t.same(decodePayment(moved, after).paymentMethod, 'pm_card_visa_sealed_token')
})

t.test('a payment is sealed once: transitions reuse its sealed bytes, a changed field is sealed anew', async (t) => {
  const p = sensitivePayment()
  const first = sealedPartsOf(encodePayment(p, ring), 'payment').sealedFields
  const again = sealedPartsOf(encodePayment({ ...p, status: 'processing', version: p.version + 1 }, ring), 'payment').sealedFields
  t.equal(Buffer.compare(Buffer.from(first), Buffer.from(again)), 0)
  const changed = sealedPartsOf(encodePayment({ ...p, paymentMethod: 'pm_other' }, ring), 'payment').sealedFields
  t.not(Buffer.compare(Buffer.from(first), Buffer.from(changed)), 0)
  t.equal(ring.open(changed, paymentFieldsContext(p.merchantId, p.checkoutId)).includes('pm_other'), true)
})

t.test('legacy schema 1 records (clear, written before part 7) are still read', async (t) => {
  const p = sensitivePayment()
  const legacy = referenceEncoders.legacyPayment(p)
  t.ok(Buffer.from(legacy).includes('pm_card_visa_sealed_token'), 'schema 1 was clear')
  t.same(decodePayment(legacy, ring), p)
})
