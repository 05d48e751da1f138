// kafkajs 2.2.4 groups a produce call's messages by partition with
//   messages.reduce((result, m) => Object.assign(result, { [p]: [...(result[p] || []), m] }), {})
// which copies a partition's array for every message added to it: O(n²/partitions) element
// copies and as many garbage arrays per send. The relay sends up to publishBatchEventsMax (1,000)
// events per call, ~16 per partition over 64 partitions; profiled under load, that function was
// 6 % of the relay worker's CPU and much of the garbage its GC (25 %) collects. This replaces the
// module's exports with a linear version: the same partitioner calls in the same order, the same
// result (an object of partition → messages in input order), pinned against the original by
// lib/test/kafkajs-linear-grouping.test.ts. Installed through the CommonJS module cache before
// kafkajs' producer loads it, like kafkajs-fast-encoding.ts; imported for its effect by
// kafka-event-bus.ts before kafkajs itself.

import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const groupingPath = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js')
const sendMessagesPath = require.resolve('kafkajs/src/producer/sendMessages.js')

export interface GroupingArgs<M> {
  topic: string
  partitionMetadata: readonly unknown[]
  messages: readonly M[]
  partitioner: (args: { topic: string, partitionMetadata: readonly unknown[], message: M }) => number
}
export type Grouping = <M>(args: GroupingArgs<M>) => Record<number, M[]>

/** kafkajs' own grouping (for the test). */
export const kafkajsGrouping = require(groupingPath) as Grouping

export const linearGrouping: Grouping = ({ topic, partitionMetadata, messages, partitioner }) => {
  const result: Record<number, typeof messages[number][]> = {}
  if (partitionMetadata.length === 0) return result
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message })
    const current = result[partition]
    if (current === undefined) result[partition] = [message]
    else current.push(message)
  }
  return result
}

/** 'too-late': kafkajs' producer had loaded the original first (still correct, only slower). */
export const linearGroupingState: 'installed' | 'too-late' = (() => {
  if (require.cache[sendMessagesPath] !== undefined) return 'too-late'
  const grouping = require.cache[groupingPath]
  if (grouping === undefined) return 'too-late'
  grouping.exports = linearGrouping
  return 'installed'
})()

