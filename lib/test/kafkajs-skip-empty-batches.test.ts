// The consumer's fetch hands on only the batches kafkajs' runner acts on: not the empty ones of
// partitions with nothing new, but still those whose records were all filtered out (their offset
// must be resolved past them).

import { createRequire } from 'node:module'
import t from 'tap'
import { batchesWorthHandling } from '../kafkajs-skip-empty-batches.ts'

const require = createRequire(import.meta.url)
const Batch = require('kafkajs/src/consumer/batch.js') as new (topic: string, fetchedOffset: string, partitionData: object) => {
  partition: number, isEmpty: () => boolean, isEmptyDueToFiltering: () => boolean
}
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: { fetch: (nodeId: number) => Promise<unknown[]> } }

function message (offset: string, isControlRecord = false): object {
  return { offset, key: Buffer.from('k'), value: Buffer.from('v'), headers: {}, isControlRecord, timestamp: '0' }
}

function partitionData (partition: number, messages: object[]): object {
  return { partition, highWatermark: '10', abortedTransactions: [], messages }
}

t.test('empty partitions are dropped; partitions with records, or with only filtered ones, are kept in order', async (t) => {
  const batches = [
    new Batch('payments.events', '0', partitionData(0, [])),
    new Batch('payments.events', '3', partitionData(1, [message('3'), message('4')])),
    new Batch('payments.events', '0', partitionData(2, [])),
    new Batch('payments.events', '5', partitionData(3, [message('5', true)])),
    new Batch('payments.events', '7', partitionData(4, [message('6')])),
  ]
  t.ok(batches[3]!.isEmptyDueToFiltering(), 'a batch of control records only counts as empty due to filtering')
  t.ok(batches[4]!.isEmptyDueToFiltering(), 'so does one whose records all precede the fetched offset')
  t.same(batchesWorthHandling(batches).map((b) => b.partition), [1, 3, 4])
})

t.test('installed on kafkajs\' consumer group: its fetch result goes through the filter', async (t) => {
  const original = ConsumerGroup.prototype.fetch
  t.match(original.toString(), /batchesWorthHandling/, 'the prototype\'s fetch is the wrapper')
})
