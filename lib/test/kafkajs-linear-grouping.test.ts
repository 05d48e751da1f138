import { createRequire } from 'node:module'
import t from 'tap'
import { kafkajsGrouping, linearGrouping, linearGroupingState } from '../kafkajs-linear-grouping.ts'
import { partitionForKey } from '../kafka-partitioner.ts'
import { prng } from '../../test/helpers/prng.ts'

const require = createRequire(import.meta.url)

t.test('installed before kafkajs\' producer loaded, so its sends use the linear grouping', (t) => {
  t.equal(linearGroupingState, 'installed')
  // sendMessages binds the module's exports when it loads: whatever the cache holds then.
  require('kafkajs/src/producer/sendMessages.js')
  t.equal(require.cache[require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js')]?.exports, linearGrouping)
  t.end()
})

t.test('same groups, same order and the same partitioner calls as kafkajs\' own, on seeded inputs', (t) => {
  const random = prng(20261206)
  for (let round = 0; round < 200; round++) {
    const partitions = 1 + Math.floor(random() * 70)
    const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i }))
    const messages = Array.from({ length: Math.floor(random() * 300) }, (_, i) => ({ key: `co_${Math.floor(random() * 50)}`, value: String(i) }))
    const calls = { ours: [] as string[], theirs: [] as string[] }
    const partitioner = (into: string[]) => ({ message }: { message: { key: string, value: string } }): number => {
      into.push(message.value)
      return partitionForKey(message.key, partitions)
    }
    const ours = linearGrouping({ topic: 't', partitionMetadata, messages, partitioner: partitioner(calls.ours) })
    const theirs = kafkajsGrouping({ topic: 't', partitionMetadata, messages, partitioner: partitioner(calls.theirs) })
    if (JSON.stringify(ours) !== JSON.stringify(theirs) || calls.ours.join() !== calls.theirs.join()) {
      t.fail(`round ${round}: groups or partitioner calls differ`)
      break
    }
  }
  t.same(linearGrouping({ topic: 't', partitionMetadata: [], messages: [{ key: 'a' }], partitioner: () => 0 }), {}, 'no partitions known: nothing grouped, like kafkajs')
  t.end()
})

