// The kafkajs implementation of event-bus.ts. Everything kafkajs-specific stays in this file.
//
// Producer settings, and why:
//   acks = -1                 a publish resolves only once every in-sync replica has the messages.
//   maxInFlightRequests = 1   kafkajs never pipelines produce requests on a connection, so a
//                             later request cannot overtake an earlier one that is retried.
//   idempotent = false        kafkajs marks its idempotent producer experimental. We do not need
//                             it: callers publish one batch at a time and re-publish after any
//                             failure, consumers deduplicate by event id (keeping the first copy),
//                             and that alone keeps per-key order (see cdc-relay/relay.ts).
//   retry.retries = 0         one attempt per publish: the caller owns retries and their backoff,
//                             so every bound (attempt time, backoff) is explicit at its call site.
//   keyedPartitioner          murmur2 of the key, the same partition a Java client (or kafkajs'
//                             DefaultPartitioner) would choose, at a fraction of the CPU.

import { readFileSync } from 'node:fs'
import './kafkajs-request-queue-fix.ts'
import './kafkajs-skip-empty-batches.ts'
import { fastEncodingState } from './kafkajs-fast-encoding.ts'
import { linearGroupingState } from './kafkajs-linear-grouping.ts'
import { Kafka, logLevel, type Consumer, type ConsumerRunConfig, type Producer, type SASLOptions } from 'kafkajs'
import { keyedPartitioner } from './kafka-partitioner.ts'
import type { Logger } from './log.ts'
import {
  EventBusError, OffsetTracker, type ConsumedMessage, type ConsumeOptions, type EventBusErrorCode, type EventConsumer,
  type EventMessage, type EventProducer, type PartitionOffset, type PipelinedConsumeOptions, type PublishOptions, type TopicReader,
} from './event-bus.ts'

/**
 * SASL credentials (issue #17 part 3): the stack's broker accepts only SASL_SSL with SCRAM and
 * authorises each principal by ACL, so every client names who it is. SCRAM: the password never
 * crosses the wire, and the broker stores only a salted verifier. TLS (`caFile`): the traffic,
 * change events included, is encrypted, and the client verifies the broker's certificate against
 * that CA (the stack's own, scripts/stack/tls.ts), so nothing in between can read or alter it.
 */
export interface KafkaSasl {
  mechanism: KafkaSaslMechanism
  username: string
  password: string
  /** PEM file of the CA the broker's certificate must chain to; undefined: no TLS (SASL_PLAINTEXT). */
  caFile?: string | undefined
}

export type KafkaSaslMechanism = 'scram-sha-256' | 'scram-sha-512'
export const kafkaSaslMechanisms: readonly KafkaSaslMechanism[] = ['scram-sha-256', 'scram-sha-512']

export interface KafkaBusOptions {
  brokers: readonly string[]
  clientId: string
  /** Undefined: no authentication (a broker with a PLAINTEXT listener; the stack's has none). */
  sasl?: KafkaSasl | undefined
  /** TCP connect bound per broker. */
  connectionTimeoutMs: number
  /** Bound on one request's round trip (kafkajs requestTimeout). */
  requestTimeoutMs: number
  log: Logger
}

export interface KafkaConsumerOptions {
  groupId: string
  sessionTimeoutMs: number
  /** Bytes fetched per partition per request. */
  fetchPartitionBytesMax: number
  /** Bytes fetched per request. */
  fetchBytesMax: number
  /** How long the broker may hold a fetch waiting for data. */
  fetchWaitMsMax: number
  /**
   * When set, run() resolves only once the consumer has joined its group, and fails past this.
   * (A fresh cluster creates its offsets topic on the first join, which can take a while; a
   * caller that must not miss the start of its subscription waits for the join.)
   */
  groupJoinTimeoutMs?: number
}

// kafkajs logs through its own logger; route it to pino at debug level. Our callers log the
// failures they act on (with codes and causes), so kafkajs' own error lines would only repeat
// them once per retry.
function logCreatorFor (log: Logger) {
  return () => ({ namespace, level, label, log: entry }: { namespace: string, level: number, label: string, log: Record<string, unknown> }) => {
    if (level === logLevel.NOTHING) return
    const { message, ...fields } = entry
    log.debug({ kafkajs: namespace, kafkajs_level: label, ...fields }, String(message))
  }
}

function kafkaClient (options: KafkaBusOptions): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    ...kafkaSaslConfig(options.sasl),
    connectionTimeout: options.connectionTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    enforceRequestTimeout: true,
    retry: { retries: 0 },
    logLevel: logLevel.WARN,
    logCreator: logCreatorFor(options.log.child({ component: 'kafkajs' })),
  })
}

// Kafka protocol error types that mean "the cluster is not ready for this (yet)": leader
// elections, a broker restarting, replicas catching up.
const brokerUnavailableTypes = new Set([
  'NOT_LEADER_FOR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND', 'BROKER_NOT_AVAILABLE', 'REPLICA_NOT_AVAILABLE', 'NETWORK_EXCEPTION',
  'KAFKA_STORAGE_ERROR', 'NOT_CONTROLLER', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS',
  'FENCED_LEADER_EPOCH', 'UNKNOWN_LEADER_EPOCH', 'OFFSET_NOT_AVAILABLE',
])

// Kafka protocol error types that mean "who you are may not do this" (ACLs) or "who are you" (SASL).
const authorizationErrorTypes = new Set([
  'TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED', 'ILLEGAL_SASL_STATE', 'UNSUPPORTED_SASL_MECHANISM',
])

/** Maps whatever kafkajs threw to our stable codes, keeping it as the cause. */
export function classifyKafkaError (error: unknown): EventBusError {
  if (error instanceof EventBusError) return error
  // kafkajs wraps the last attempt's error in KafkaJSNumberOfRetriesExceeded / NonRetriable.
  let inner: any = error
  for (let depth = 0; depth < 4 && inner?.cause !== undefined && inner.cause !== inner &&
    (inner.name === 'KafkaJSNumberOfRetriesExceeded' || inner.name === 'KafkaJSNonRetriableError'); depth++) {
    inner = inner.cause
  }
  const name: string = inner?.name ?? ''
  const message: string = inner?.message ?? String(error)
  const make = (code: EventBusErrorCode, retriable: boolean): EventBusError =>
    new EventBusError(code, message, { retriable, cause: error })
  if (name === 'KafkaJSConnectionError' || name === 'KafkaJSConnectionClosedError' ||
    name === 'KafkaJSBrokerNotFound' || name === 'KafkaJSNoBrokerAvailableError' ||
    /disconnected/i.test(message)) {
    return make('connection', true)
  }
  if (name === 'KafkaJSSASLAuthenticationError') return make('unauthorized', false)
  if (name === 'KafkaJSRequestTimeoutError' || name === 'KafkaJSTimeout' || name === 'KafkaJSLockTimeout') {
    return make('timeout', true)
  }
  if (name === 'KafkaJSMetadataNotLoaded' || name === 'KafkaJSTopicMetadataNotLoaded') return make('unknown_topic', true)
  if (name === 'KafkaJSProtocolError' || typeof inner?.type === 'string') {
    const type: string = inner.type ?? ''
    if (type === 'UNKNOWN_TOPIC_OR_PARTITION') return make('unknown_topic', true)
    if (type === 'REQUEST_TIMED_OUT') return make('timeout', true)
    if (authorizationErrorTypes.has(type)) return make('unauthorized', false)
    if (brokerUnavailableTypes.has(type)) return make('broker_unavailable', true)
    return make(inner.retriable === true ? 'broker_unavailable' : 'rejected', inner.retriable === true)
  }
  return make('unknown', inner?.retriable !== false)
}

/** Rejects with a `timeout` EventBusError if `promise` has not settled after `timeoutMs`. */
function withDeadline<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new EventBusError('timeout', `${what} took longer than ${timeoutMs} ms`, { retriable: true })), timeoutMs)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

class KafkaEventProducer implements EventProducer {
  readonly #producer: Producer
  #connected: Promise<void> | undefined
  #closed = false

  constructor (kafka: Kafka) {
    this.#producer = kafka.producer({
      createPartitioner: keyedPartitioner,
      allowAutoTopicCreation: false,
      idempotent: false,
      maxInFlightRequests: 1,
      retry: { retries: 0 },
    })
  }

  async publish (topic: string, messages: readonly EventMessage[], options: PublishOptions): Promise<void> {
    if (this.#closed) throw new EventBusError('closed', 'producer is closed', { retriable: false })
    if (messages.length === 0) return
    const attempt = async (): Promise<void> => {
      // A failed connect is forgotten, so the next publish connects again.
      this.#connected ??= this.#producer.connect().catch((error: unknown) => {
        this.#connected = undefined
        throw error
      })
      await this.#connected
      await this.#producer.send({
        topic,
        acks: -1,
        // The broker's own bound for gathering the acknowledgements.
        timeout: options.timeoutMs,
        messages: messages.map((m) => ({
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          // kafkajs only reads the headers: no copy.
          headers: m.headers as Record<string, string>,
        })),
      })
    }
    try {
      await withDeadline(attempt(), options.timeoutMs, 'publish')
    } catch (error) {
      throw classifyKafkaError(error)
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#producer.disconnect().catch(() => {})
  }
}

/** A consumer kafkajs gave up on is started again after 1 s, doubling up to 30 s. */
const consumerRestartBaseDelayMs = 1_000
const consumerRestartDelayMsMax = 30_000
/** A pipelined fetch waiting for room heartbeats (and re-checks staleness) this often. */
const roomWaitHeartbeatIntervalMs = 1_000
/** close() re-checks whether pipelined messages are still in flight this often. */
const closeDrainPollIntervalMs = 20

class KafkaEventConsumer implements EventConsumer {
  readonly #consumer: Consumer
  readonly #options: KafkaConsumerOptions
  readonly #log: Logger
  #closed = false
  #crashListening = false
  #restarts = 0
  // Pipelined mode (runPipelined). An epoch is one stretch of deliveries whose offsets may be
  // committed together: a new group generation or a restart after a failed message starts a new
  // one (with a fresh tracker), because kafkajs then fetches again from the committed offsets and
  // the old epoch's bookkeeping no longer describes what is being delivered.
  #pipelined: PipelinedConsumeOptions | undefined
  #epoch = 0
  #tracker = new OffsetTracker()
  /** Messages handed over and not finished, across epochs (old epochs' work still uses memory). */
  #inFlight = 0
  #roomWaiters: Array<() => void> = []
  #commitTimer: NodeJS.Timeout | undefined
  #committing: Promise<void> | undefined
  #failedEpoch = -1
  /** When the latest fetch came back (fetch pacing). */
  #fetchEndedAtMs = Number.NEGATIVE_INFINITY

  constructor (kafka: Kafka, options: KafkaConsumerOptions, log: Logger) {
    this.#options = options
    this.#log = log
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      maxBytesPerPartition: options.fetchPartitionBytesMax,
      maxBytes: options.fetchBytesMax,
      maxWaitTimeInMs: options.fetchWaitMsMax,
      allowAutoTopicCreation: false,
      // Consumers restart after failures on their own; bounded per attempt by requestTimeout.
      retry: { retries: 5 },
    })
  }

  async run (options: ConsumeOptions): Promise<void> {
    if (this.#closed) throw new EventBusError('closed', 'consumer is closed', { retriable: false })
    if (!this.#crashListening) {
      this.#crashListening = true
      this.#restartOnCrash(options)
    }
    await this.#start(options, {
      eachBatchAutoResolve: true,
      autoCommit: true,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        const messages = batch.messages.map((m) => consumedFrom(batch.topic, batch.partition, m as any))
        await options.onBatch(messages, { heartbeat, isStale: () => isStale() || !isRunning() })
      },
    })
  }

  async runPipelined (options: PipelinedConsumeOptions): Promise<void> {
    if (this.#closed) throw new EventBusError('closed', 'consumer is closed', { retriable: false })
    const consumer = this.#consumer
    if (this.#pipelined === undefined) {
      this.#pipelined = options
      this.#restartOnCrash(options)
      // Every (re)join may change the assignment and kafkajs then reads from the committed offsets.
      consumer.on(consumer.events.GROUP_JOIN, () => {
        this.#newEpoch()
        options.lag?.reset()
      })
      consumer.on(consumer.events.FETCH, () => { this.#fetchEndedAtMs = performance.now() })
      this.#commitTimer = setInterval(() => { void this.#commitDue() }, options.offsetCommitIntervalMs)
    }
    await this.#start(options, {
      // The fetch position moves on as soon as a batch is handed over (resolveOffset below); what
      // is committed is decided by the tracker, never by kafkajs.
      eachBatchAutoResolve: false,
      autoCommit: false,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (batch.messages.length === 0) return
        const epoch = this.#epoch
        const stale = (): boolean => this.#closed || epoch !== this.#epoch || isStale() || !isRunning()
        await this.#waitForRoom(batch.messages.length, options.messagesInFlightMax, heartbeat, stale)
        // Not handed over, not resolved: whoever owns the partition next fetches it again.
        if (stale()) return
        const messages = batch.messages.map((m) => consumedFrom(batch.topic, batch.partition, m as any))
        this.#handOver(messages, options)
        resolveOffset(messages[messages.length - 1]!.offset)
        // Consumer lag: one subtraction per batch, from the fetch's own high watermark.
        options.lag?.set(batch.topic, batch.partition, Number(batch.offsetLag()))
        // kafkajs fetches again once every batch of this fetch has returned from here: holding
        // the (already handed over) batch paces the fetches. Every batch of one fetch waits for
        // the same moment, so the fetch is held once, not once per partition. Counted from when
        // the fetch came back, not from when it was sent: a fetch that waited at the broker for
        // the first event of a trickle must not let the next one go at once.
        const paceMs = this.#fetchEndedAtMs + options.fetchPacingMs - performance.now()
        if (paceMs > 0 && !stale()) await sleepMs(paceMs)
      },
    })
  }

  /**
   * kafkajs restarts a crashed consumer on its own only for errors it deems retriable; others
   * (e.g. "group coordinator not found" while a fresh broker creates its offsets topic, or a
   * broker outage longer than its retries) stop it for good. A service must not silently stop
   * consuming, so we start it again ourselves, with capped backoff, until close(). Once per consumer.
   */
  #restartOnCrash (options: ConsumeOptions | PipelinedConsumeOptions): void {
    this.#consumer.on(this.#consumer.events.CRASH, ({ payload }) => {
      this.#log.warn({ err: payload.error, group_id: payload.groupId, restart: payload.restart }, 'kafka consumer crashed')
      if (!payload.restart) this.#restartLater(options)
    })
  }

  /** Connects, subscribes and runs; waits (bounded by groupJoinTimeoutMs, if set) for the group join. */
  async #start (options: ConsumeOptions | PipelinedConsumeOptions, runConfig: ConsumerRunConfig): Promise<void> {
    const consumer = this.#consumer
    let removeJoinListener: (() => void) | undefined
    const joined = new Promise<void>((resolve) => { removeJoinListener = consumer.on(consumer.events.GROUP_JOIN, () => resolve()) })
    try {
      await consumer.connect()
      await consumer.subscribe({ topics: [...options.topics], fromBeginning: options.fromBeginning })
      await consumer.run(runConfig)
      const { groupJoinTimeoutMs } = this.#options
      if (groupJoinTimeoutMs !== undefined) await withDeadline(joined, groupJoinTimeoutMs, 'joining the consumer group')
    } catch (error) {
      throw classifyKafkaError(error)
    } finally {
      removeJoinListener?.()
    }
  }

  #newEpoch (): void {
    this.#epoch++
    this.#tracker = new OffsetTracker()
    for (const wake of this.#roomWaiters.splice(0)) wake()
  }

  async #waitForRoom (count: number, inFlightMax: number, heartbeat: () => Promise<void>, stale: () => boolean): Promise<void> {
    // A batch larger than the bound goes alone, once nothing else is in flight.
    while (this.#inFlight > 0 && this.#inFlight + count > inFlightMax && !stale()) {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.#roomWaiters.push(resolve)
        timer = setTimeout(resolve, roomWaitHeartbeatIntervalMs)
      })
      clearTimeout(timer)
      // A rebalance shows up here as an error; kafkajs handles it (rejoins) when it propagates.
      if (!stale()) await heartbeat()
    }
  }

  #handOver (messages: readonly ConsumedMessage[], options: PipelinedConsumeOptions): void {
    const tracker = this.#tracker
    const epoch = this.#epoch
    for (const m of messages) tracker.track(m.topic, m.partition, m.offset)
    this.#inFlight += messages.length
    let done: ReadonlyArray<Promise<void>>
    try {
      done = options.onMessages(messages)
      if (done.length !== messages.length) throw new Error(`onMessages returned ${done.length} promises for ${messages.length} messages`)
    } catch (error) {
      done = messages.map(() => Promise.reject(error))
    }
    done.forEach((promise, i) => {
      const m = messages[i]!
      promise.then(() => {
        tracker.finish(m.topic, m.partition, m.offset)
        this.#settled()
      }, (error: unknown) => {
        this.#settled()
        this.#messageFailed(epoch, m, error, options)
      })
    })
  }

  #settled (): void {
    this.#inFlight--
    const wake = this.#roomWaiters.shift()
    wake?.()
  }

  /**
   * A message that failed (a bug in the handler: expected failures are the handler's to absorb)
   * must be delivered again. Its epoch is abandoned (its tracker never commits past it) and the
   * consumer starts over from the committed offsets, as after a crash.
   */
  #messageFailed (epoch: number, message: ConsumedMessage, error: unknown, options: PipelinedConsumeOptions): void {
    this.#log.error({ err: error, topic: message.topic, partition: message.partition, offset: message.offset, key: message.key },
      'message failed; consuming again from the committed offsets')
    if (this.#closed || epoch !== this.#epoch || this.#failedEpoch === epoch) return
    this.#failedEpoch = epoch
    this.#newEpoch()
    this.#restartLater(options)
  }

  /** Commits what the current epoch's tracker says is finished; a failed commit is retried next time. */
  #commitDue (): Promise<void> {
    this.#committing ??= (async () => {
      const tracker = this.#tracker
      const due: PartitionOffset[] = tracker.commitsDue()
      if (due.length === 0) return
      try {
        await this.#consumer.commitOffsets(due)
        tracker.markCommitted(due)
      } catch (error) {
        this.#log.warn({ err: classifyKafkaError(error), partitions: due.length }, 'offset commit failed; retrying')
      }
    })().finally(() => { this.#committing = undefined })
    return this.#committing
  }

  #restartLater (options: ConsumeOptions | PipelinedConsumeOptions): void {
    if (this.#closed) return
    const delayMs = Math.min(consumerRestartDelayMsMax, consumerRestartBaseDelayMs * 2 ** Math.min(this.#restarts++, 10))
    setTimeout(() => {
      if (this.#closed) return
      this.#consumer.disconnect().catch(() => {}).then(() =>
        'onMessages' in options ? this.runPipelined(options) : this.run(options)).then(() => {
        this.#restarts = 0
        this.#log.info({ group_id: this.#options.groupId }, 'kafka consumer restarted')
      }, (error: unknown) => {
        this.#log.warn({ err: error }, 'kafka consumer restart failed; trying again')
        this.#restartLater(options)
      })
    }, delayMs)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const pipelined = this.#pipelined
    if (pipelined !== undefined) {
      // No new hand-overs (eachBatch sees #closed); let what is in flight finish, commit it, leave.
      clearInterval(this.#commitTimer)
      try {
        // Paused partitions are not fetched: no batch fetched again and again while we drain.
        this.#consumer.pause(pipelined.topics.map((topic) => ({ topic })))
      } catch {}
      for (const wake of this.#roomWaiters.splice(0)) wake()
      const deadline = performance.now() + pipelined.closeDrainTimeoutMs
      while (this.#inFlight > 0 && performance.now() < deadline) await sleepMs(closeDrainPollIntervalMs)
      if (this.#inFlight > 0) this.#log.warn({ in_flight: this.#inFlight }, 'closing with messages in flight; they are delivered again')
      await this.#committing
      await this.#commitDue()
    }
    await this.#consumer.disconnect().catch(() => {})
  }
}

function sleepMs (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export function createKafkaProducer (options: KafkaBusOptions): EventProducer {
  if (fastEncodingState !== 'installed') {
    options.log.warn('kafkajs produce path loaded before lib/kafkajs-fast-encoding.ts: publishing uses kafkajs\' slower encoders')
  }
  if (linearGroupingState !== 'installed') {
    options.log.warn('kafkajs producer loaded before lib/kafkajs-linear-grouping.ts: each send groups its messages in quadratic time')
  }
  return new KafkaEventProducer(kafkaClient(options))
}

export function createKafkaConsumer (options: KafkaBusOptions & KafkaConsumerOptions): EventConsumer {
  return new KafkaEventConsumer(kafkaClient(options), options, options.log)
}

function consumedFrom (topic: string, partition: number, m: { offset: string, key: Buffer | null, value: Buffer | null, headers?: Record<string, unknown> }): ConsumedMessage {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(m.headers ?? {})) {
    if (value === undefined) continue
    headers[name] = Array.isArray(value) ? value.map(String).join(',') : String(value)
  }
  const value = m.value ?? Buffer.alloc(0)
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key === null ? undefined : m.key.toString(),
    value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    headers,
  }
}

/** A throwaway consumer group reads each partition up to its high watermark as of the call. */
export function createKafkaTopicReader (options: KafkaBusOptions): TopicReader {
  const kafka = kafkaClient(options)
  return {
    async readToEnd (topic, { messagesMax, timeoutMs }) {
      const admin = kafka.admin()
      await admin.connect()
      const ends = new Map<number, bigint>()
      try {
        for (const p of await admin.fetchTopicOffsets(topic)) {
          if (BigInt(p.high) > BigInt(p.low)) ends.set(p.partition, BigInt(p.high))
        }
      } finally {
        await admin.disconnect()
      }
      const messages: ConsumedMessage[] = []
      if (ends.size === 0) return messages
      const consumer = kafka.consumer({ groupId: `ringpay-reader-${process.pid}-${Date.now()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 })
      try {
        await consumer.connect()
        await consumer.subscribe({ topics: [topic], fromBeginning: true })
        await withDeadline(new Promise<void>((resolve, reject) => {
          consumer.run({
            eachMessage: async ({ partition, message }) => {
              const end = ends.get(partition)
              if (end === undefined || BigInt(message.offset) >= end) return
              if (messages.length < messagesMax) messages.push(consumedFrom(topic, partition, message as any))
              if (BigInt(message.offset) + 1n >= end) ends.delete(partition)
              if (ends.size === 0 || messages.length >= messagesMax) resolve()
            },
          }).catch(reject)
        }), timeoutMs, `reading ${topic}`)
      } catch (error) {
        throw classifyKafkaError(error)
      } finally {
        await consumer.disconnect().catch(() => {})
      }
      return messages
    },
    async close () {},
  }
}

/** The oldest TLS version a Kafka client accepts. */
export const kafkaTlsMinVersion = 'TLSv1.2' as const

/**
 * kafkajs' connection settings for `sasl` (none when undefined). With a CA file, TLS: the broker's
 * certificate is verified (chain and address) as Node verifies any server's; the file is read here,
 * once per client.
 */
export function kafkaSaslConfig (sasl: KafkaSasl | undefined): { ssl: false | { ca: string[], minVersion: typeof kafkaTlsMinVersion, rejectUnauthorized: true }, sasl: SASLOptions } | Record<string, never> {
  if (sasl === undefined) return {}
  const { username, password } = sasl
  const ssl = sasl.caFile === undefined ? false as const : { ca: [readFileSync(sasl.caFile, 'utf8')], minVersion: kafkaTlsMinVersion, rejectUnauthorized: true as const }
  return { ssl, sasl: sasl.mechanism === 'scram-sha-256' ? { mechanism: 'scram-sha-256', username, password } : { mechanism: 'scram-sha-512', username, password } }
}

/** A missing or malformed KAFKA_SASL_* setting. */
export class KafkaSaslConfigError extends Error {
  readonly code = 'kafka_sasl_config_invalid'
  constructor (message: string) {
    super(message)
    this.name = 'KafkaSaslConfigError'
  }
}

/**
 * KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM (default scram-sha-512):
 * undefined when no username is set (an unauthenticated client, which the stack's broker refuses);
 * a username without a password, or an unknown mechanism, is an error rather than a silent
 * fall back to no authentication.
 */
export function kafkaSaslFromEnv (env: NodeJS.ProcessEnv): KafkaSasl | undefined {
  const username = env.KAFKA_SASL_USERNAME ?? ''
  if (username === '') return undefined
  const password = env.KAFKA_SASL_PASSWORD ?? ''
  if (password === '') throw new KafkaSaslConfigError('KAFKA_SASL_USERNAME is set but KAFKA_SASL_PASSWORD is empty')
  const mechanism = (env.KAFKA_SASL_MECHANISM ?? 'scram-sha-512').toLowerCase()
  if (!(kafkaSaslMechanisms as readonly string[]).includes(mechanism)) {
    throw new KafkaSaslConfigError(`KAFKA_SASL_MECHANISM must be one of ${kafkaSaslMechanisms.join(', ')}, got ${mechanism}`)
  }
  const caFile = env.KAFKA_TLS_CA_FILE ?? ''
  return { mechanism: mechanism as KafkaSaslMechanism, username, password, ...(caFile === '' ? {} : { caFile }) }
}

/** The KAFKA_SASL_* (and KAFKA_TLS_CA_FILE) environment that gives a child process these credentials. */
export function kafkaSaslEnv (sasl: KafkaSasl | undefined): Record<string, string> {
  if (sasl === undefined) return {}
  return {
    KAFKA_SASL_USERNAME: sasl.username, KAFKA_SASL_PASSWORD: sasl.password, KAFKA_SASL_MECHANISM: sasl.mechanism,
    ...(sasl.caFile === undefined ? {} : { KAFKA_TLS_CA_FILE: sasl.caFile }),
  }
}

/** `KAFKA_BROKERS`-style list: comma-separated host:port. Undefined when empty. */
export function parseBrokerList (raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined
  const brokers = raw.split(',').map((b) => b.trim()).filter((b) => b.length > 0)
  return brokers.length > 0 ? brokers : undefined
}
