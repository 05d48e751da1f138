// How far behind the pipeline is, sampled while an e2e run goes on:
//   relay lag     committed change-log entries not yet acknowledged by Kafka, summed over the
//                 nodes (ringpay_relay_lag_events), and the oldest one's age (max over nodes);
//   consumer lag  messages on the events topic past the processors' committed offsets, summed
//                 over partitions (Kafka's high watermark minus the group's committed offset).

import '../../lib/kafkajs-request-queue-fix.ts'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { kafkaSaslConfig, type KafkaSasl } from '../../lib/kafka-event-bus.ts'

export const lagProbeTimeoutMs = 5_000

export interface LagSample {
  relayLagEvents: number
  relayLagSecondsMax: number
  consumerLagMessages: number
}

async function nodeGauge (adminOrigin: string, names: readonly string[]): Promise<number[]> {
  const text = await fetch(`${adminOrigin}/metrics`, { signal: AbortSignal.timeout(lagProbeTimeoutMs) }).then((r) => r.text())
  return names.map((name) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    return line === undefined ? 0 : Number(line.slice(name.length + 1))
  })
}

export class PipelineLagProbe {
  readonly #admin: Admin
  readonly #nodeOrigins: readonly string[]
  readonly #topic: string
  readonly #groupId: string
  #connected = false

  constructor (o: { brokers: readonly string[], sasl?: KafkaSasl | undefined, nodeAdminOrigins: readonly string[], topic: string, groupId: string }) {
    this.#admin = new Kafka({ clientId: 'ringpay-bench-lag', brokers: [...o.brokers], ...kafkaSaslConfig(o.sasl), logLevel: logLevel.NOTHING }).admin()
    this.#nodeOrigins = o.nodeAdminOrigins
    this.#topic = o.topic
    this.#groupId = o.groupId
  }

  async sample (): Promise<LagSample> {
    if (!this.#connected) {
      await this.#admin.connect()
      this.#connected = true
    }
    const [nodes, high, committed] = await Promise.all([
      Promise.all(this.#nodeOrigins.map((o) => nodeGauge(o, ['ringpay_relay_lag_events', 'ringpay_relay_lag_seconds']))),
      this.#admin.fetchTopicOffsets(this.#topic),
      this.#admin.fetchOffsets({ groupId: this.#groupId, topics: [this.#topic] }),
    ])
    const committedBy = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
    let consumerLag = 0
    for (const p of high) {
      const done = committedBy.get(p.partition) ?? -1
      // -1: nothing committed yet for the partition; everything from its low watermark is behind.
      consumerLag += Number(p.high) - (done < 0 ? Number(p.low) : done)
    }
    return {
      relayLagEvents: nodes.reduce((sum, [events]) => sum + (events ?? 0), 0),
      relayLagSecondsMax: Math.max(0, ...nodes.map(([, seconds]) => seconds ?? 0)),
      consumerLagMessages: consumerLag,
    }
  }

  async close (): Promise<void> {
    if (this.#connected) await this.#admin.disconnect().catch(() => {})
  }
}
