// Our own small interface to the event bus. The relay and the processors see only these types,
// so the Kafka client (kafkajs today, see kafka-event-bus.ts) can be replaced by a maintained one
// without touching them.

/** One message to publish. `value` is sent byte for byte. */
export interface EventMessage {
  /** Partitioning key: all messages with one key go to one partition, in publish order. */
  key: string
  value: Uint8Array
  headers: Readonly<Record<string, string>>
}

export interface PublishOptions {
  /** The whole publish, acknowledgement included, fails with code `timeout` past this. */
  timeoutMs: number
}

export interface EventProducer {
  /**
   * Publishes `messages` to `topic` and resolves once every one of them is acknowledged by all
   * in-sync replicas (acks = all). Messages with one key keep their order within one call.
   * Rejects with an EventBusError; after a rejection any subset of the messages may have been
   * written (possibly more than once), so callers that must not lose anything publish again and
   * the consumers deduplicate.
   * Connects on first use and reconnects after failures; callers never connect explicitly.
   */
  publish: (topic: string, messages: readonly EventMessage[], options: PublishOptions) => Promise<void>
  /** Closes connections. Pending publishes reject. Idempotent. */
  close: () => Promise<void>
}

/** One consumed message; header values are decoded as UTF-8. */
export interface ConsumedMessage {
  topic: string
  partition: number
  /** Kafka offsets are 64-bit: kept as a decimal string. */
  offset: string
  key: string | undefined
  value: Uint8Array
  headers: Readonly<Record<string, string>>
}

export interface ConsumeOptions {
  topics: readonly string[]
  /** Where a group without committed offsets starts: the oldest message, or only new ones. */
  fromBeginning: boolean
  /** Partitions handled at once (each partition's batches stay sequential, in order). */
  partitionsConsumedConcurrently: number
  /**
   * Handles the messages of one partition fetched together, in partition order. Offsets are
   * committed only after it resolves; if it rejects, the same messages are delivered again.
   * A handler that may take long calls `heartbeat()` now and then to keep its group membership.
   */
  onBatch: (messages: readonly ConsumedMessage[], control: BatchControl) => Promise<void>
}

export interface BatchControl {
  heartbeat: () => Promise<void>
  /** True once the consumer is stopping or rebalancing: finish quickly, the batch will be redelivered. */
  isStale: () => boolean
}

export interface EventConsumer {
  /** Joins the group and starts delivering; resolves once running. Call once. */
  run: (options: ConsumeOptions) => Promise<void>
  /** Leaves the group and closes connections. Idempotent. */
  close: () => Promise<void>
}

/** Reads a topic from its beginning up to where it ends now (for operator tools, not services). */
export interface TopicReader {
  /** At most `messagesMax` messages, in partition order; bounded by `timeoutMs`. */
  readToEnd: (topic: string, options: { messagesMax: number, timeoutMs: number }) => Promise<ConsumedMessage[]>
  close: () => Promise<void>
}

export const eventBusErrorCodes = [
  /** No broker reachable, or a connection broke mid-request. */
  'connection',
  /** No answer (or no acknowledgement) in time. */
  'timeout',
  /** The topic or a partition is not known to the cluster (yet). */
  'unknown_topic',
  /** Not enough in-sync replicas / leader moved / other retriable broker refusal. */
  'broker_unavailable',
  /** The broker refused the request for good (e.g. message too large, not authorised). */
  'rejected',
  /** close() was called. */
  'closed',
  /** Anything the client reported that we do not classify. */
  'unknown',
] as const
export type EventBusErrorCode = typeof eventBusErrorCodes[number]

/** An expected event-bus failure, with a stable code; the client's error is kept as `cause`. */
export class EventBusError extends Error {
  readonly code: EventBusErrorCode
  /** True when the same request may succeed later without any change. */
  readonly retriable: boolean

  constructor (code: EventBusErrorCode, message: string, options: { retriable: boolean, cause?: unknown }) {
    super(`${code}: ${message}`, { cause: options.cause })
    this.name = 'EventBusError'
    this.code = code
    this.retriable = options.retriable
  }
}
