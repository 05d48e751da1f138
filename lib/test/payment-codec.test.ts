// The hand-written Payment and ChangeEvent encoders must produce exactly protobufjs' bytes (the
// relay publishes them unchanged; processors and tools decode them with protobufjs).

import t from 'tap'
import { prng } from '../../test/helpers/prng.ts'
import {
  decodeChangeEvent, decodePayment, encodeChangeEvent, encodePayment, referenceEncoders, paymentStatuses, eventTypes, refundStatuses,
  type ChangeEvent, type Payment, type Refund,
} from '../payment-codec.ts'

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
  return {
    checkoutId: 'co_' + text(random, 60),
    merchantId: text(random, 20),
    amount,
    currency: 'EUR',
    paymentMethod: text(random, 40),
    description: text(random, random() < 0.1 ? 500 : 40),
    customerRef: text(random, 128),
    metadata,
    status: paymentStatuses[Math.floor(random() * paymentStatuses.length)]!,
    version: integer(random),
    createdAtMs: random() < 0.05 ? 0 : 1_763_919_000_000 + Math.floor(random() * 1e9),
    updatedAtMs: 1_763_919_000_000 + Math.floor(random() * 1e9),
    requestHash: Uint8Array.from({ length: 32 }, () => Math.floor(random() * 256)),
    failureCode: random() < 0.5 ? '' : text(random, 20),
    failureMessage: random() < 0.5 ? '' : text(random, 200),
    pspReference: random() < 0.5 ? '' : text(random, 40),
    nodeId: random() < 0.1 ? '' : 'n' + Math.floor(random() * 10),
    refunds: refunds(random, amount),
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
    const paymentBytes = encodePayment(p)
    if (Buffer.compare(paymentBytes, referenceEncoders.payment(p)) !== 0) {
      mismatches++
      t.fail(`payment ${i} (seed ${seed}) differs`, { payment: p })
    }
    const eventBytes = encodeChangeEvent(e, paymentBytes)
    if (Buffer.compare(eventBytes, referenceEncoders.changeEvent(e)) !== 0) {
      mismatches++
      t.fail(`event ${i} (seed ${seed}) differs`, { event: e })
    }
    if (Buffer.compare(eventBytes, encodeChangeEvent(e)) !== 0) t.fail(`event ${i}: embedded payment bytes differ from encoding it`)
    if (mismatches > 5) break
  }
  t.equal(mismatches, 0)
})

t.test('round trip', async (t) => {
  const random = prng(7)
  const p = payment(random)
  const e = event(random, p)
  t.same(decodePayment(encodePayment(p)), p)
  const decoded = decodeChangeEvent(encodeChangeEvent(e))
  t.same(decoded.payment, p)
  t.equal(decoded.sequence, e.sequence)
  t.equal(decoded.actor, e.actor)
  t.same(decoded.webhook, e.webhook)
})

t.test('refunds round trip, and refunds beyond the amount are refused', async (t) => {
  const random = prng(11)
  let p = payment(random)
  while (p.refunds.length < 2) p = payment(random)
  const decoded = decodePayment(encodePayment(p))
  t.same(decoded.refunds, p.refunds)
  const e = { ...event(random, p), type: 'payment.refund_created' as const, refundId: p.refunds[1]!.id }
  t.equal(decodeChangeEvent(encodeChangeEvent(e)).refundId, p.refunds[1]!.id)
  const refund = p.refunds[0]!
  t.throws(() => encodePayment({ ...p, refunds: [{ ...refund, status: 'pending', amount: p.amount }, { ...refund, id: 're_2', status: 'succeeded', amount: 1 }] }),
    /refunds exceed the amount/)
  // A failed refund holds nothing back.
  t.doesNotThrow(() => encodePayment({ ...p, refunds: [{ ...refund, status: 'failed', amount: p.amount }, { ...refund, id: 're_2', status: 'succeeded', amount: p.amount }] }))
  t.throws(() => encodePayment({ ...p, refunds: [{ ...refund, amount: 0 }] }), /bad refund amount/)
})

t.test('bad values are refused, not encoded', async (t) => {
  const p = payment(prng(3))
  t.throws(() => encodePayment({ ...p, amount: -1 }), /bad amount/)
  t.throws(() => encodePayment({ ...p, amount: 1.5 }), /bad amount/)
  t.throws(() => encodePayment({ ...p, createdAtMs: -5 }), /varint/)
  t.throws(() => encodePayment({ ...p, requestHash: new Uint8Array(3) }), /bad request hash/)
  t.throws(() => encodeChangeEvent({ ...event(prng(3), p), sequence: 0 }), /bad event sequence/)
})
