// The relay's metrics, registered in the node's prom-client registry. The worker sends its
// numbers to the main thread (protocol.ts); gauges read the host's latest state at scrape time.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { eventBusErrorCodes } from '../lib/event-bus.ts'

export interface RelayProbes {
  lagEvents: () => number
  lagSeconds: () => number
  cursor: () => number
  nextSequence: () => number
  changelogEntries: () => number
  backlogFull: () => boolean
  backlogEventsMax: () => number
  kafkaHealthy: () => boolean
  workerCpuSeconds: () => number
}

export interface RelayMetrics {
  publishDuration: Histogram
  batchEvents: Histogram
  batchBytes: Histogram
  publishedEvents: Counter
  readEvents: Counter<'source'>
  errors: Counter<'kind'>
}

export function registerRelayMetrics (registry: Registry, probes: RelayProbes): RelayMetrics {
  const registers = [registry]
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers, collect () { this.set(read()) } })
  }
  gauge('ringpay_relay_lag_events', 'Committed change-log entries not yet acknowledged by Kafka', probes.lagEvents)
  gauge('ringpay_relay_lag_seconds', 'Age of the oldest unpublished change-log entry (0 when caught up)', probes.lagSeconds)
  gauge('ringpay_relay_cursor_sequence', 'The first change-log sequence Kafka has not acknowledged', probes.cursor)
  gauge('ringpay_relay_committed_sequence', "The node's next change-log sequence (everything below is durable)", probes.nextSequence)
  gauge('ringpay_relay_changelog_entries', 'Change-log entries present in the store (recounted every few seconds)', probes.changelogEntries)
  gauge('ringpay_relay_backlog_full', '1 while the unpublished backlog is over its budget and new payments are shed', () => (probes.backlogFull() ? 1 : 0))
  gauge('ringpay_relay_backlog_events_max', 'Disk budget: unpublished entries past which new payments are shed', probes.backlogEventsMax)
  // A gauge fed from the worker's own clock (process.threadCpuUsage), not a counter we increment.
  gauge('ringpay_relay_worker_cpu_seconds', 'CPU time used by the relay worker thread since it started', probes.workerCpuSeconds)
  gauge('ringpay_relay_kafka_healthy', '1 if the last publish attempt was acknowledged, 0 if it failed', () => (probes.kafkaHealthy() ? 1 : 0))
  const errors = new Counter({
    name: 'ringpay_relay_publish_errors_total',
    help: 'Failed publish attempts by kind (each is retried)',
    labelNames: ['kind'],
    registers,
  })
  const readEvents = new Counter({
    name: 'ringpay_relay_read_events_total',
    help: 'Published change-log entries by where they were read: memory (the handoff from the node) or disk',
    labelNames: ['source'],
    registers,
  })
  for (const source of ['memory', 'disk']) readEvents.inc({ source }, 0)
  // Every kind shows up as 0 from the start, so rate() and alerts work before the first failure.
  for (const kind of eventBusErrorCodes) errors.inc({ kind }, 0)
  return {
    publishDuration: new Histogram({
      name: 'ringpay_relay_publish_duration_seconds',
      help: 'Time from sending a batch to Kafka to its acknowledgement (successful attempts)',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 10],
      registers,
    }),
    batchEvents: new Histogram({
      name: 'ringpay_relay_publish_batch_events',
      help: 'Change-log entries per published batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
      registers,
    }),
    batchBytes: new Histogram({
      name: 'ringpay_relay_publish_batch_bytes',
      help: 'Message bytes per published batch',
      buckets: [256, 1024, 4096, 16384, 65536, 262144, 524288, 1048576],
      registers,
    }),
    publishedEvents: new Counter({
      name: 'ringpay_relay_published_events_total',
      help: 'Change-log entries acknowledged by Kafka',
      registers,
    }),
    readEvents,
    errors,
  }
}
