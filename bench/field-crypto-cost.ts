// CPU cost of sealing at rest (issue #17 part 7), per operation and per payment, on one core:
//   node bench/field-crypto-cost.ts [iterations]
// Compares encode/decode of a typical payment record with its sensitive fields sealed against
// the same record in clear (schema 1), and times the seal/open primitives the processor adds.

import { KeyRing, newFieldKey } from '../lib/field-crypto.ts'
import { decodePayment, encodePayment, openedFieldsCacheEntriesMax, referenceEncoders, type Payment } from '../lib/payment-codec.ts'

const iterations = Number(process.argv[2] ?? 200_000)
const ring = new KeyRing({ active: 'k1', keys: [newFieldKey('k1')] })

function payment (i: number): Payment {
  return {
    checkoutId: `co_bench_${i}`, merchantId: 'merchant_demo', amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa',
    description: 'Test order', customerRef: 'cust_42', metadata: { order: '1234' }, status: 'pending', version: 1,
    createdAtMs: 1_765_000_000_000, updatedAtMs: 1_765_000_000_000, requestHash: new Uint8Array(32), failureCode: '',
    failureMessage: '', pspReference: '', nodeId: 'n1', refunds: [],
  }
}

/** Mean µs per call of `fn` over `n` calls, after a warm-up; the best of 3 rounds. */
function timeUs (n: number, fn: (i: number) => unknown): number {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i)
  let best = Infinity
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) fn(i)
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / n)
  }
  return best
}

const payments = Array.from({ length: 1024 }, (_, i) => payment(i))
const sealedBytes = payments.map((p) => encodePayment(p, ring))
// Twice the opened-fields cache, read in order: every read misses it (a payment read first).
const coldCount = 2 * openedFieldsCacheEntriesMax
const coldBytes = Array.from({ length: coldCount }, (_, i) => encodePayment(payment(100_000 + i), ring))
const clearBytes = payments.map((p) => referenceEncoders.legacyPayment(p))
const plain = Buffer.from('\n\fpm_card_visa\x12\x07cust_42\x1a\x0f\n\x05order\x12\x041234')
const sealedPlain = ring.seal(plain, 'payment/merchant_demo/co_bench_1')

const results = {
  seal_us: timeUs(iterations, () => ring.seal(plain, 'payment/merchant_demo/co_bench_1')),
  open_us: timeUs(iterations, () => ring.open(sealedPlain, 'payment/merchant_demo/co_bench_1')),
  seal_text_us: timeUs(iterations, () => ring.sealText('pm_card_visa', 'payments.payment_method/merchant_demo/co_bench_1')),
  // A create: the payment object is new, so its fields are sealed.
  encode_new_payment_us: timeUs(iterations, (i) => encodePayment({ ...payments[i & 1023]!, metadata: { order: '1234' } }, ring)),
  // A transition: same fields, sealed bytes reused.
  encode_transition_us: timeUs(iterations, (i) => encodePayment({ ...payments[i & 1023]!, version: 2 }, ring)),
  // A transition's read of a payment seen recently (the usual case): the opened fields are cached.
  decode_sealed_warm_us: timeUs(iterations, (i) => decodePayment(sealedBytes[i & 1023]!, ring)),
  decode_sealed_cold_us: timeUs(iterations, (i) => decodePayment(coldBytes[i % coldCount]!, ring)),
  decode_clear_us: timeUs(iterations, (i) => decodePayment(clearBytes[i & 1023]!, ring)),
}
console.log(JSON.stringify({ iterations, node: process.version, ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Number(v.toFixed(2))])) }))
