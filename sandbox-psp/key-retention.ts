// Idempotency key retention (issue #16): real PSPs forget a key after about 24 h, and a request
// with a forgotten key makes a new charge. The sandbox simulates it with the runtime setting
// idempotencyKeyRetentionMs (0: keys are kept forever, the default): a key whose charge was made
// longer ago than that is as if it had never been used. Charges themselves are never forgotten.

import type { PspStore, IdempotencyRecord } from './store.ts'

/** The key's record, unless the retention has passed since its charge was made. */
export function liveIdempotency (store: PspStore, key: string, retentionMs: number, nowMs: number): IdempotencyRecord | undefined {
  const record = store.getIdempotency(key)
  if (record === undefined || retentionMs === 0) return record
  const charge = store.getCharge(record.charge_id)
  return charge !== undefined && nowMs - charge.created * 1000 > retentionMs ? undefined : record
}
