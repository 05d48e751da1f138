// Messages between the node's main thread (relay-host.ts) and the relay worker (relay-worker.ts).

import type { KafkaSasl } from '../lib/kafka-event-bus.ts'
import type { PackedEvents } from './handoff.ts'
import type { RelayLimits } from './limits.ts'
import type { RelayReport } from './relay.ts'

export interface RelayWorkerData {
  nodeId: string
  /** Exactly the location string the node's store was opened with: classic-level shares one
   * LevelDB handle between threads per location (`multithreading: true`). */
  dataDir: string
  brokers: string[]
  /** The relay's Kafka login (KAFKA_SASL_*); undefined: unauthenticated. */
  sasl: KafkaSasl | undefined
  /** RINGPAY_EVENT_SIGNING_KEY (`<key id>:<base64 key>`), or undefined: publish unsigned. */
  signingKey: string | undefined
  topic: string
  limits: RelayLimits
  initialNextSequence: number
}

export type HostToWorker =
  /**
   * A batch is durable: the change log holds every sequence below nextSequence. `events`: that
   * batch's change-event values (buffers transferred), for the relay's handoff cache.
   */
  | { type: 'committed', nextSequence: number, events?: PackedEvents }
  | { type: 'stop' }

export type WorkerToHost =
  | { type: 'ready', cursor: number }
  | { type: 'report', report: RelayReport }
  | { type: 'changelog', entries: number, firstSequence: number | undefined, truncated: boolean }
  /** CPU time the worker thread has used since it started (user + system). */
  | { type: 'cpu', cpuSeconds: number }
  | { type: 'stopped', cursor: number, outcome: 'stopped' | 'abandoned' }
