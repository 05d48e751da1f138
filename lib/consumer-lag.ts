// Consumer lag (issue #18, the console's health page and the dashboard): per partition, how many
// messages lay beyond what the consumer had fetched, as of its latest batch of that partition
// (kafkajs' batch.offsetLag(): the partition's high watermark less the offset after the batch;
// no admin round trip, it comes with every fetch). Messages fetched but not yet finished are not in
// it (ringpay_processor_payments_in_flight, the offsets committed): a consumer keeping up shows 0.
// A partition moved to another consumer (a rebalance) is dropped, so summing over consumers of a
// group counts each partition once.

import { Gauge, type Registry } from 'prom-client'

export const consumerLagMetricName = 'ringpay_consumer_lag_messages'

/** What runPipelined's `lag` option takes (lib/event-bus.ts PipelinedConsumeOptions). */
export interface ConsumerLagSink {
  set: (topic: string, partition: number, messages: number) => void
  /** The assignment may have changed: every partition's value is forgotten until fetched again. */
  reset: () => void
}

export function consumerLagGauge (registry: Registry, group: string): ConsumerLagSink {
  const gauge = new Gauge({
    name: 'ringpay_consumer_lag_messages',
    help: 'Messages of a partition past the consumer\'s latest fetch of it (high watermark - next offset), per consumer group',
    labelNames: ['group', 'topic', 'partition'] as const,
    registers: [registry],
  })
  return {
    set: (topic, partition, messages) => gauge.set({ group, topic, partition: String(partition) }, messages),
    reset: () => gauge.reset(),
  }
}
