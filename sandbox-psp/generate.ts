// Bulk generation of succeeded charges for one settlement date, for the reconciler benchmark:
// large fsynced batches straight into the settlement index, no webhooks, no latency. Amounts and
// times come from a seeded generator (same seed, same amounts); charge ids are random like real
// ones, so callers learn them from the returned batches.
//
// LevelDB's cost here is per operation, not per byte (~100k puts/s on a busy 2-core box), so by
// default a generated charge is ONE put: its settlement index entry. It appears in the report and
// the stats, but GET /v1/charges/<id> and ?idempotency_key= do not know it. `retrievable: true`
// also writes c/, k/ and x/ like a real charge (4 puts; for small counts).
//
// References are `<referencePrefix><index>` (index from 0), the merchant's checkout ids; each
// charge's idempotency key is `<merchant_id>/<reference>`, as a processor sends it (checkout ids
// are per merchant, Ringpay issue #17 part 5). Generating twice with the same prefix for the same
// merchant is refused (generation_exists); two merchants may share a prefix (and so their ids).
//
// `refundEvery: k` (0: none) also refunds every k-th charge (index 0, k, 2k, …) on the same date,
// half its amount (or all of it with `refundWhole`), `refundDelayS` after the charge (at most the
// end of the day): one more settlement index entry each, with the refund's own reference
// `<reference>-re` (a caller's refund id). Only the report knows these refunds.

import { feeFor } from './money.ts'
import { paramsFingerprint, type Charge } from './charge.ts'
import { PspError } from './errors.ts'
import { randomId } from './ids.ts'
import type { PspLimits } from './limits.ts'
import { randomInt, seedFromString, seededRandom } from './random.ts'
import type { Refund } from './refund.ts'
import { encodeRefundSettlementEntry, encodeSettlementEntry, isReportDate } from './settlement.ts'
import { keys, type Op, type PspStore } from './store.ts'

export interface GenerateOptions {
  date: string
  count: number
  merchantId: string
  seed: number
  currency: string
  referencePrefix: string
  amountMin: number
  amountMax: number
  /** Also write the charge, idempotency and admin index records (4 puts per charge instead of 1). */
  retrievable: boolean
  /** Refund every k-th charge on the same date (0: no refunds). */
  refundEvery: number
  /** Refunds give the whole amount back (else half of it, at least 1). */
  refundWhole: boolean
}

export interface GeneratedRefund {
  /** The refund's own reference (`<charge reference>-re`). */
  reference: string
  psp_reference: string
  amount: number
  /** Unix seconds; it succeeded at the same instant. */
  created: number
}

/** What a caller needs to write the matching internal records. */
export interface GeneratedCharge {
  reference: string
  psp_reference: string
  amount: number
  currency: string
  fee: number
  net: number
  /** Unix seconds; the charge succeeded at the same instant. */
  created: number
  refund?: GeneratedRefund
}

const dayS = 86_400
/** A generated refund succeeds this long after its charge (within the same day). */
const refundDelayS = 60
/** Generations running, per store: a second request for the same prefix must not slip past the check. */
const running = new WeakMap<PspStore, Set<string>>()

export function defaultReferencePrefix (date: string, seed: number): string {
  return `gen-${date}-${seed}-`
}

export function checkGenerateOptions (o: GenerateOptions, limits: PspLimits): void {
  const invalid = (param: string, message: string): PspError => new PspError('parameter_invalid', { param, message: `${param} ${message}` })
  if (!isReportDate(o.date)) throw invalid('date', 'must be a date YYYY-MM-DD')
  if (!Number.isSafeInteger(o.count) || o.count < 1 || o.count > limits.generateCountMax) throw invalid('count', `must be an integer within 1..${limits.generateCountMax}`)
  if (!Number.isSafeInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw invalid('seed', 'must be an integer within 0..4294967295')
  if (!Number.isSafeInteger(o.amountMin) || !Number.isSafeInteger(o.amountMax) || o.amountMin < 1 ||
    o.amountMax < o.amountMin || o.amountMax > limits.amountMinorMax) {
    throw invalid('amount_max', `amount_min..amount_max must be integers within 1..${limits.amountMinorMax}`)
  }
  if (!/^[\x21-\x7e]{1,100}$/.test(o.referencePrefix)) throw invalid('reference_prefix', 'must be 1..100 printable ASCII characters')
  if (!/^[\x21-\x7e]{1,128}$/.test(o.merchantId)) throw invalid('merchant_id', 'must be 1..128 printable ASCII characters')
  if (!Number.isSafeInteger(o.refundEvery) || o.refundEvery < 0 || o.refundEvery > o.count) throw invalid('refund_every', 'must be an integer within 0..count')
}

/**
 * Writes `count` succeeded charges, `generateBatchCharges` per fsynced batch, and hands each
 * committed batch to `onBatch` (awaited: a slow consumer slows the generator, memory stays flat).
 */
export async function generateCharges (store: PspStore, o: GenerateOptions, limits: PspLimits,
  onBatch: (batch: GeneratedCharge[]) => Promise<void> | void): Promise<number> {
  checkGenerateOptions(o, limits)
  let prefixes = running.get(store)
  if (prefixes === undefined) running.set(store, prefixes = new Set())
  const generation = generationOf(o)
  if (prefixes.has(generation) || store.has(keys.generation(generation))) throw new PspError('generation_exists')
  if (prefixes.size >= limits.generationsInFlightMax) {
    throw new PspError('rate_limited', { message: 'Another generation is running; retry when it is done', retryAfterS: 5 })
  }
  prefixes.add(generation)
  try {
    return await writeGenerated(store, o, limits, onBatch)
  } finally {
    prefixes.delete(generation)
  }
}

/** A generation is one merchant's prefix: its charges' idempotency keys are unique per (merchant, reference). */
function generationOf (o: GenerateOptions): string {
  return `${o.merchantId}/${o.referencePrefix}`
}

async function writeGenerated (store: PspStore, o: GenerateOptions, limits: PspLimits,
  onBatch: (batch: GeneratedCharge[]) => Promise<void> | void): Promise<number> {
  const random = seededRandom((o.seed ^ seedFromString(o.date)) >>> 0)
  const dayStartS = Date.parse(`${o.date}T00:00:00Z`) / 1000
  let done = 0
  while (done < o.count) {
    const size = Math.min(limits.generateBatchCharges, o.count - done)
    const ops: Op[] = []
    const batch: GeneratedCharge[] = []
    for (let i = done; i < done + size; i++) {
      const reference = o.referencePrefix + i
      const idempotencyKey = `${o.merchantId}/${reference}`
      const amount = randomInt(random, o.amountMin, o.amountMax)
      const created = dayStartS + randomInt(random, 0, dayS - 1)
      const fee = feeFor(amount)
      const charge: Charge = {
        id: randomId('ch'),
        object: 'charge',
        status: 'succeeded',
        amount,
        currency: o.currency,
        payment_method: 'pm_card_visa',
        reference,
        merchant_id: o.merchantId,
        idempotency_key: idempotencyKey,
        created,
        fee,
        net: amount - fee,
        settled_on: o.date,
        succeeded_at: created,
      }
      ops.push({ type: 'put', key: keys.settlement(o.date, charge.id), value: encodeSettlementEntry(charge) })
      if (o.retrievable) {
        ops.push(
          { type: 'put', key: keys.charge(charge.id), value: JSON.stringify(charge) },
          { type: 'put', key: keys.idempotency(idempotencyKey), value: JSON.stringify({ charge_id: charge.id, fingerprint: paramsFingerprint(charge) }) },
          // Fresh keys (the merchant's prefix was checked above): the x/ index is written directly.
          { type: 'put', key: keys.chargeIndex(idempotencyKey), value: JSON.stringify([charge.id]) },
          { type: 'put', key: keys.chargesByReference(reference), value: JSON.stringify([charge.id]) },
        )
      }
      const generated: GeneratedCharge = { reference, psp_reference: charge.id, amount, currency: o.currency, fee, net: amount - fee, created }
      if (o.refundEvery > 0 && i % o.refundEvery === 0) {
        const succeededAt = Math.min(created + refundDelayS, dayStartS + dayS - 1)
        const refund: Refund = {
          id: randomId('re'),
          object: 'refund',
          status: 'succeeded',
          amount: o.refundWhole ? amount : Math.max(1, Math.floor(amount / 2)),
          currency: o.currency,
          charge: charge.id,
          reference: `${reference}-re`,
          payment_reference: reference,
          merchant_id: o.merchantId,
          idempotency_key: `${idempotencyKey}-re`,
          created: succeededAt,
          succeeded_at: succeededAt,
        }
        ops.push({ type: 'put', key: keys.settlement(o.date, refund.id), value: encodeRefundSettlementEntry(refund) })
        generated.refund = { reference: refund.reference, psp_reference: refund.id, amount: refund.amount, created: succeededAt }
      }
      batch.push(generated)
    }
    if (done === 0) ops.push({ type: 'put', key: keys.generation(generationOf(o)), value: JSON.stringify({ date: o.date, count: o.count, seed: o.seed }) })
    await store.write({ ops, counters: { chargesTotal: size, succeeded: size } })
    done += size
    await onBatch(batch)
  }
  return done
}
