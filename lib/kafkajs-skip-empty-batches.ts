// kafkajs 2.2.4's consumer fetches every assigned partition in each request and turns every
// partition of the answer into a Batch, empty or not. Each one then goes through the fetcher's
// worker queue and the runner (assignment bookkeeping, a worker slot, `handleBatch`, lag figures,
// a heartbeat check) only to be dropped there as empty. With 64 partitions and a trickle of
// events, nearly all of a fetch's 64 batches are empty: measured end to end at 50 payments/s,
// that per-partition walk was most of the processor's CPU per fetch, and fetches (one per burst
// of events) are what a low rate pays for.
//
// The fix, on ConsumerGroup's prototype (so it holds whenever kafkajs creates a consumer): its
// fetch returns only the batches the runner would act on. A batch with no record at all is what
// the runner skips (`isEmpty()`: it only heartbeats, which it also does for a fetch that returns
// nothing); one whose records were all filtered out (control records, aborted transactions) is
// kept, since the runner resolves its offset past them. Imported for its effect by
// kafka-event-bus.ts; installed once.

import { createRequire } from 'node:module'

export interface FetchedBatch {
  isEmpty: () => boolean
  isEmptyDueToFiltering: () => boolean
}

interface ConsumerGroupPrototype {
  fetch: (nodeId: number) => Promise<FetchedBatch[]>
  [installed]?: true
}

const installed = Symbol.for('ringpay.kafkajsSkipEmptyBatches')
const require = createRequire(import.meta.url)
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroupPrototype }
const prototype = ConsumerGroup.prototype

/** The batches the runner acts on, in fetch order. */
export function batchesWorthHandling<B extends FetchedBatch> (batches: readonly B[]): B[] {
  return batches.filter((batch) => !batch.isEmpty() || batch.isEmptyDueToFiltering())
}

if (prototype[installed] !== true) {
  prototype[installed] = true
  const fetch = prototype.fetch
  prototype.fetch = async function (this: ConsumerGroupPrototype, nodeId: number): Promise<FetchedBatch[]> {
    return batchesWorthHandling(await fetch.call(this, nodeId))
  }
}
