// The relay's main-thread side: starts the worker, forwards "batch committed" notifications,
// turns the worker's reports into metrics, and enforces the disk budget.
//
// Disk budget policy. Unpublished change-log entries live on the node's disk until Kafka
// acknowledges them. While Kafka is down the node keeps accepting payments and the backlog grows;
// once it reaches backlogEventsMax (RINGPAY_RELAY_BACKLOG_EVENTS_MAX) the node
//   - refuses NEW payments with 503 backlog_full and Retry-After (the client retries, possibly
//     landing after Kafka is back; nothing was written, so nothing is half-done);
//   - keeps accepting idempotent replays of existing payments (they write nothing) and state
//     transitions: those move payments already accepted towards their end, and refusing them would
//     strand money in flight. The state machine only moves forward, so transitions add at most a
//     few entries per payment already accepted: the budget is a bound on admission, not a hard cap
//     on the disk (hard cap ≈ budget × (1 + longest transition path)).
//   - reports it: /readyz answers 503 with the reason, ringpay_relay_backlog_full = 1, and one
//     error log line when it starts shedding (and an info line when it stops).
// It admits new payments again once the backlog is down to backlogResumeEventsMax (90 %), so it
// does not flap at the boundary.

import assert from 'node:assert/strict'
import { Worker } from 'node:worker_threads'
import type { Registry } from 'prom-client'
import type { Logger } from '../lib/log.ts'
import { ProblemError } from '../payment-svc/errors.ts'
import type { RelayConfig } from './config.ts'
import { packEvents, packedTransferList } from './handoff.ts'
import type { HostToWorker, RelayWorkerData, WorkerToHost } from './protocol.ts'
import type { RelayReport } from './relay.ts'
import { registerRelayMetrics, type RelayMetrics } from './relay-metrics.ts'

export interface RelayHostContext {
  nodeId: string
  /** The location string the node's store was opened with. */
  dataDir: string
  /** The node's next change-log sequence (store.meta.nextSequence), read on the main thread. */
  nextSequence: () => number
  registry: Registry
  log: Logger
  /** The worker crashed (a bug or a store failure): the node must stop. */
  onFatal: (reason: string, error: unknown) => void
}

const workerUrl = new URL('./relay-worker.ts', import.meta.url)

export class RelayHost {
  readonly #config: RelayConfig
  readonly #ctx: RelayHostContext
  readonly #worker: Worker
  readonly #metrics: RelayMetrics
  #cursor: number
  #headOccurredAtMs: number | undefined
  #changelogCount: { entries: number, truncated: boolean } | undefined
  #workerCpuSeconds = 0
  #kafkaHealthy = true
  #backlogFull = false
  #stopping: Promise<void> | undefined
  #exited = false

  private constructor (config: RelayConfig, ctx: RelayHostContext, worker: Worker, cursor: number) {
    this.#config = config
    this.#ctx = ctx
    this.#worker = worker
    this.#cursor = cursor
    this.#metrics = registerRelayMetrics(ctx.registry, {
      lagEvents: () => this.lagEvents,
      lagSeconds: () => this.lagSeconds,
      cursor: () => this.#cursor,
      nextSequence: () => ctx.nextSequence(),
      // Before the first recount, or past the recount's limit, the lag is the best estimate.
      changelogEntries: () => this.#changelogCount === undefined || this.#changelogCount.truncated
        ? Math.max(this.#changelogCount?.entries ?? 0, this.lagEvents)
        : this.#changelogCount.entries,
      backlogFull: () => this.#refreshBacklog(),
      backlogEventsMax: () => config.limits.backlogEventsMax,
      kafkaHealthy: () => this.#kafkaHealthy,
      workerCpuSeconds: () => this.#workerCpuSeconds,
    })
  }

  /** Starts the worker and waits until it has opened the store and read its cursor. */
  static async start (config: RelayConfig, ctx: RelayHostContext): Promise<RelayHost> {
    const { limits } = config
    const workerData: RelayWorkerData = {
      nodeId: ctx.nodeId,
      dataDir: ctx.dataDir,
      brokers: config.brokers,
      sasl: config.sasl,
      signingKey: config.signingKey,
      topic: config.topic,
      limits,
      initialNextSequence: ctx.nextSequence(),
    }
    const worker = new Worker(workerUrl, { workerData, name: `cdc-relay-${ctx.nodeId}` })
    const cursor = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        void worker.terminate()
        reject(new Error(`relay worker did not start within ${limits.startWorkerMsMax} ms`))
      }, limits.startWorkerMsMax)
      const onMessage = (message: WorkerToHost): void => {
        if (message.type !== 'ready') return
        done()
        resolve(message.cursor)
      }
      const onError = (error: unknown): void => {
        done()
        reject(new Error('relay worker failed to start', { cause: error }))
      }
      const onExit = (code: number): void => {
        done()
        reject(new Error(`relay worker exited during start-up with code ${code}`))
      }
      const done = (): void => {
        clearTimeout(timer)
        worker.off('message', onMessage).off('error', onError).off('exit', onExit)
      }
      worker.on('message', onMessage).once('error', onError).once('exit', onExit)
    })
    const host = new RelayHost(config, ctx, worker, cursor)
    host.#listen()
    ctx.log.info({ cursor, next_sequence: ctx.nextSequence(), topic: config.topic, backlog_events_max: limits.backlogEventsMax },
      'cdc relay started')
    return host
  }

  /** Committed change-log entries Kafka has not acknowledged (as of the worker's last report). */
  get lagEvents (): number {
    return Math.max(0, this.#ctx.nextSequence() - this.#cursor)
  }

  /** Age of the oldest unpublished entry; 0 when caught up or before the worker has read it. */
  get lagSeconds (): number {
    if (this.lagEvents === 0 || this.#headOccurredAtMs === undefined) return 0
    return Math.max(0, (Date.now() - this.#headOccurredAtMs) / 1000)
  }

  get backlogFull (): boolean {
    return this.#refreshBacklog()
  }

  /**
   * Tells the worker a batch is durable, handing over its change-event values (`events`, first
   * sequence `firstSequence`) so the worker need not read them back from disk. Called on the
   * accept path: one copy of the values into one buffer, and one postMessage that transfers it.
   */
  notifyCommitted (nextSequence: number, firstSequence?: number, events?: readonly Uint8Array[]): void {
    if (this.#stopping !== undefined) return
    const packed = firstSequence === undefined || events === undefined
      ? undefined
      : packEvents(firstSequence, events, this.#config.limits.handoffBytesMax)
    const message: HostToWorker = packed === undefined ? { type: 'committed', nextSequence } : { type: 'committed', nextSequence, events: packed }
    this.#worker.postMessage(message, packed === undefined ? [] : packedTransferList(packed))
  }

  /** The admission gate for NEW payments (PaymentService.setAdmissionGate). */
  admissionProblem (): ProblemError | undefined {
    if (!this.#refreshBacklog()) return undefined
    return new ProblemError('backlog_full', {
      retryAfterS: this.#config.limits.backlogRetryAfterS,
      detail: `${this.lagEvents} change-log entries await publication; the budget is ${this.#config.limits.backlogEventsMax}`,
    })
  }

  /** Readiness: why the node should not get new payments, if the relay is the reason. */
  notReadyReason (): string | undefined {
    if (!this.#refreshBacklog()) return undefined
    return `relay backlog over budget: ${this.lagEvents} unpublished change-log entries (budget ${this.#config.limits.backlogEventsMax})`
  }

  /**
   * Stops the worker: it finishes the publish in flight (bounded by stopDrainMsMax), writes its
   * cursor and closes its store handle; past stopWorkerMsMax it is terminated. Call before the
   * node's store closes.
   */
  stop (): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop (): Promise<void> {
    const { limits } = this.#config
    if (this.#exited) return
    const stopped = new Promise<'stopped' | 'exited'>((resolve) => {
      this.#worker.on('message', (message: WorkerToHost) => { if (message.type === 'stopped') resolve('stopped') })
      this.#worker.once('exit', () => resolve('exited'))
    })
    const message: HostToWorker = { type: 'stop' }
    this.#worker.postMessage(message)
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      stopped,
      new Promise<'timeout'>((resolve) => { timer = setTimeout(resolve, limits.stopWorkerMsMax, 'timeout') }),
    ]).finally(() => clearTimeout(timer))
    if (outcome === 'timeout') {
      this.#ctx.log.error({ cursor: this.#cursor }, `relay worker did not stop within ${limits.stopWorkerMsMax} ms; terminating it`)
    }
    // After 'stopped' the worker has closed its store handle: nothing is lost by terminating it.
    await this.#worker.terminate()
    this.#ctx.log.info({ cursor: this.#cursor, lag_events: this.lagEvents, outcome }, 'cdc relay stopped')
  }

  #listen (): void {
    this.#worker.on('message', (message: WorkerToHost) => {
      switch (message.type) {
        case 'report': return this.#onReport(message.report)
        case 'changelog':
          this.#changelogCount = { entries: message.entries, truncated: message.truncated }
          return
        case 'cpu':
          this.#workerCpuSeconds = message.cpuSeconds
          return
        case 'stopped':
          this.#cursor = message.cursor
          return
        case 'ready':
          assert.fail('relay worker reported ready twice')
      }
    })
    // A worker 'error' is followed by 'exit': report the first, once.
    let failed = false
    const fail = (reason: string, error: unknown): void => {
      if (failed) return
      failed = true
      if (this.#stopping === undefined) this.#ctx.onFatal(reason, error)
      else this.#ctx.log.error({ err: error }, `${reason} while stopping`)
    }
    this.#worker.on('error', (error) => fail('cdc relay worker failed', error))
    this.#worker.on('exit', (code) => {
      this.#exited = true
      if (this.#stopping === undefined) fail('cdc relay worker exited', new Error(`relay worker exited with code ${code}`))
    })
  }

  #onReport (report: RelayReport): void {
    switch (report.kind) {
      case 'head':
        this.#cursor = report.cursor
        this.#headOccurredAtMs = report.headOccurredAtMs
        break
      case 'published':
        this.#cursor = report.cursor
        this.#headOccurredAtMs = undefined
        this.#kafkaHealthy = true
        this.#metrics.publishDuration.observe(report.durationMs / 1000)
        this.#metrics.batchEvents.observe(report.events)
        this.#metrics.batchBytes.observe(report.bytes)
        this.#metrics.publishedEvents.inc(report.events)
        this.#metrics.readEvents.inc({ source: report.source }, report.events)
        break
      case 'publish_failed':
        this.#kafkaHealthy = false
        this.#metrics.errors.inc({ kind: report.code })
        break
    }
    this.#refreshBacklog()
  }

  /** Applies the budget with hysteresis; logs the transitions. Returns whether it is full. */
  #refreshBacklog (): boolean {
    const { backlogEventsMax, backlogResumeEventsMax } = this.#config.limits
    const lag = this.lagEvents
    if (!this.#backlogFull && lag >= backlogEventsMax) {
      this.#backlogFull = true
      this.#ctx.log.error({ lag_events: lag, backlog_events_max: backlogEventsMax, kafka_healthy: this.#kafkaHealthy },
        'relay backlog over its disk budget: refusing new payments (503 backlog_full) until it drains')
    } else if (this.#backlogFull && lag <= backlogResumeEventsMax) {
      this.#backlogFull = false
      this.#ctx.log.info({ lag_events: lag, backlog_resume_events_max: backlogResumeEventsMax },
        'relay backlog back under budget: accepting new payments again')
    }
    return this.#backlogFull
  }
}

/**
 * What node.ts calls: the relay when configured (KAFKA_BROKERS), with its admission gate
 * installed; undefined otherwise.
 */
export async function startRelay (config: RelayConfig | undefined, ctx: RelayHostContext & {
  setAdmissionGate: (gate: () => ProblemError | undefined) => void
}): Promise<RelayHost | undefined> {
  if (config === undefined) {
    ctx.log.warn('cdc relay disabled (KAFKA_BROKERS not set): the change log is not published and grows without bound')
    return undefined
  }
  const host = await RelayHost.start(config, ctx)
  ctx.setAdmissionGate(() => host.admissionProblem())
  return host
}
