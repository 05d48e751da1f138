// The relay's worker thread: opens the node's LevelDB (same location, same process: classic-level
// shares the handle between threads), runs the publishing loop, and talks to the main thread
// only through messages (protocol.ts). Kafka encoding and network I/O run here, off the event
// loop that accepts payments.

import assert from 'node:assert/strict'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { ClassicLevel } from 'classic-level'
import { eventSignerFromEnv, eventSigningKeyEnv } from '../lib/event-signing.ts'
import { createKafkaProducer } from '../lib/kafka-event-bus.ts'
import { createLogger } from '../lib/log.ts'
import { startTracing } from '../lib/tracing.ts'
import { LevelChangeLog } from './change-log.ts'
import type { HostToWorker, RelayWorkerData, WorkerToHost } from './protocol.ts'
import { Relay } from './relay.ts'

assert.ok(parentPort !== null, 'relay-worker.ts runs only as a worker thread')
const port = parentPort
const data = workerData as RelayWorkerData
const { limits } = data
const log = createLogger('cdc-relay', { node_id: data.nodeId })
const post = (message: WorkerToHost): void => port.postMessage(message)

// On Linux the nice value is per thread, and pid 0 means this thread: only the relay yields.
if (process.platform === 'linux' && limits.workerNiceLevel > 0) {
  try {
    setPriority(0, limits.workerNiceLevel)
  } catch (error) {
    log.warn({ err: error, nice: limits.workerNiceLevel }, 'could not lower the relay thread priority; it competes with the accept path')
  }
}

const db = new ClassicLevel<string, Uint8Array>(data.dataDir, {
  keyEncoding: 'utf8',
  valueEncoding: 'view',
  // The node opened this location first; it must exist already.
  createIfMissing: false,
  multithreading: true,
})
await db.open()

// Issue #18: the thread's own tracer when RINGPAY_TRACING=1 (trace file cdc-relay-<pid>.jsonl).
const tracer = await startTracing('cdc-relay')
const changeLog = new LevelChangeLog(db)
const producer = createKafkaProducer({
  brokers: data.brokers,
  sasl: data.sasl,
  clientId: `ringpay-relay-${data.nodeId}`,
  connectionTimeoutMs: limits.kafkaConnectionTimeoutMs,
  requestTimeoutMs: limits.publishTimeoutMs,
  log,
})
const signer = data.signingKey === undefined ? undefined : eventSignerFromEnv({ [eventSigningKeyEnv]: data.signingKey })
if (signer === undefined) log.warn('no RINGPAY_EVENT_SIGNING_KEY: events are published unsigned, and processors refuse them')
const relay = new Relay({
  nodeId: data.nodeId,
  signer,
  topic: data.topic,
  changeLog,
  producer,
  limits,
  log,
  initialNextSequence: data.initialNextSequence,
  report: (report) => {
    if (report.kind === 'published' || report.kind === 'head') changelogDirty = true
    post({ type: 'report', report })
  },
})

// Every tick: the thread's CPU time; and a change-log recount (for the metrics), only when
// something changed since the last one.
let changelogDirty = true
let counting: Promise<void> | undefined
const countTimer = setInterval(() => {
  const cpu = process.threadCpuUsage()
  post({ type: 'cpu', cpuSeconds: (cpu.user + cpu.system) / 1e6 })
  if (!changelogDirty || counting !== undefined) return
  changelogDirty = false
  counting = changeLog.count(limits.changelogScanEntriesMax).then(
    (count) => post({ type: 'changelog', ...count }),
    (error: unknown) => log.error({ err: error }, 'change-log recount failed'),
  ).finally(() => { counting = undefined })
}, limits.changelogScanIntervalMs)

let stopping = false
port.on('message', (message: HostToWorker) => {
  switch (message.type) {
    case 'committed':
      changelogDirty = true
      relay.notifyCommitted(message.nextSequence, message.events)
      return
    case 'stop':
      if (stopping) return
      stopping = true
      void stop()
  }
})

async function stop (): Promise<void> {
  clearInterval(countTimer)
  const outcome = await relay.stop(limits.stopDrainMsMax)
  // Closing the producer fails whatever publish is still pending (abandoned: re-sent on restart).
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    producer.close(),
    new Promise<void>((resolve) => { timer = setTimeout(resolve, limits.producerCloseMsMax) }),
  ]).finally(() => clearTimeout(timer))
  await counting
  await tracer?.shutdown()
  await db.close()
  log.info({ cursor: relay.cursor, outcome }, 'relay stopped')
  post({ type: 'stopped', cursor: relay.cursor, outcome })
  port.close()
}

log.info({ cursor: relay.cursor, next_sequence: data.initialNextSequence, topic: data.topic, brokers: data.brokers }, 'relay starting')
post({ type: 'ready', cursor: relay.cursor })
relay.start().catch((error: unknown) => {
  // A bug (assertion) or a store failure: rethrow outside the promise so the worker dies and
  // the main thread's 'error' handler stops the node.
  setImmediate(() => { throw error })
})
