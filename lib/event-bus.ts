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
  /** Joins the group and starts delivering; resolves once running. Call once (this or runPipelined). */
  run: (options: ConsumeOptions) => Promise<void>
  /** Like run, but pipelined (see PipelinedConsumeOptions). Call once (this or run). */
  runPipelined: (options: PipelinedConsumeOptions) => Promise<void>
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
  /** The broker refused the request for good (e.g. message too large). */
  'rejected',
  /**
   * The broker did not authenticate this client (SASL) or its ACLs do not allow the request
   * (issue #17 part 3): a configuration fault, not cured by waiting.
   */
  'unauthorized',
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

/**
 * Pipelined consumption: messages are handed over as soon as they are fetched and finish out of
 * order (one slow payment must not hold back the rest of its partition), while what is committed
 * stays safe: for each partition, only up to its lowest unfinished message.
 */
export interface PipelinedConsumeOptions {
  topics: readonly string[]
  fromBeginning: boolean
  /** Partitions whose fetched batches are handed over at once (handing over is quick). */
  partitionsConsumedConcurrently: number
  /**
   * Messages handed over and not yet finished, across all partitions. Fetching waits while the
   * next batch would not fit (a batch larger than the bound is taken alone once nothing is in flight).
   */
  messagesInFlightMax: number
  /** How often the offsets of finished messages are committed. */
  offsetCommitIntervalMs: number
  /** close() waits this long for messages in flight before committing and leaving. */
  closeDrainTimeoutMs: number
  /**
   * A fetch that brought messages is followed by the next one no sooner than this after it
   * came back, so a trickle of events arrives in fewer, larger fetches (each fetch over many
   * partitions costs the consumer and the broker far more than the events in it). An idle
   * consumer is not slowed down: a fetch with nothing in it is not paced. Adds at most this much
   * latency per event. 0 = fetch again as soon as the batches are handed over.
   */
  fetchPacingMs: number
  /**
   * Takes the messages of one partition fetched together, in partition order, and returns at
   * once one promise per message (same order) that settles when that message is finished.
   * Messages of a later batch may be handed over while earlier ones are still running: the
   * handler keeps whatever order it needs (e.g. per key). A rejected promise means a bug: the
   * consumer starts over from the committed offsets, so nothing unfinished is skipped.
   */
  onMessages: (messages: readonly ConsumedMessage[]) => ReadonlyArray<Promise<void>>
  /** Told each handed-over batch's partition lag and every group join (lib/consumer-lag.ts); optional. */
  lag?: {
    set: (topic: string, partition: number, messages: number) => void
    reset: () => void
  }
}

/** One partition's next offset to read, as committed to the group. */
export interface PartitionOffset {
  topic: string
  partition: number
  /** The offset of the next message to read (decimal string, as Kafka's 64-bit offsets). */
  offset: string
}

interface TrackedPartition {
  topic: string
  partition: number
  /** Offsets handed over, ascending; those before `head` are finished and dropped. */
  offsets: bigint[]
  head: number
  /** Finished offsets at or after `head`. */
  finished: Set<bigint>
  /** One past the highest offset handed over. */
  end: bigint
  /** The next offset to read that was last committed (or handed out to be committed). */
  committed: bigint | undefined
}

/** Binary search among the unfinished-or-finished offsets from `head` on. */
function isTracked (p: TrackedPartition, at: bigint): boolean {
  let low = p.head
  let high = p.offsets.length - 1
  while (low <= high) {
    const mid = (low + high) >>> 1
    const value = p.offsets[mid]!
    if (value === at) return true
    if (value < at) low = mid + 1
    else high = mid - 1
  }
  return false
}

/** Compact a partition's offset list once this many finished entries sit before its head. */
const trackerCompactAfterEntries = 1024

/**
 * Tracks messages handed over and finished, per partition, and says what may be committed: the
 * lowest unfinished offset, or one past the last handed-over offset when all are finished. So a
 * crash after any commit re-delivers every message that was not finished, and nothing else is
 * needed for "nothing skipped".
 */
export class OffsetTracker {
  readonly #partitions = new Map<string, TrackedPartition>()
  #unfinished = 0

  /** Messages tracked and not finished, across all partitions. */
  get unfinished (): number { return this.#unfinished }

  #partition (topic: string, partition: number): TrackedPartition | undefined {
    return this.#partitions.get(`${topic}\u0000${partition}`)
  }

  /** Records a handed-over message. Offsets of one partition must come in ascending order. */
  track (topic: string, partition: number, offset: string): void {
    const key = `${topic}\u0000${partition}`
    const at = BigInt(offset)
    let p = this.#partitions.get(key)
    if (p === undefined) {
      p = { topic, partition, offsets: [], head: 0, finished: new Set(), end: at, committed: undefined }
      this.#partitions.set(key, p)
    }
    if (at < p.end) throw new RangeError(`offset ${offset} of ${topic}/${partition} tracked after ${p.end - 1n}`)
    p.offsets.push(at)
    p.end = at + 1n
    this.#unfinished++
  }

  /** Marks a tracked message finished. Finishing twice, or an untracked offset, is a bug. */
  finish (topic: string, partition: number, offset: string): void {
    const p = this.#partition(topic, partition)
    const at = BigInt(offset)
    if (p === undefined || p.finished.has(at) || !isTracked(p, at)) {
      throw new RangeError(`offset ${offset} of ${topic}/${partition} is not in flight`)
    }
    p.finished.add(at)
    this.#unfinished--
    while (p.head < p.offsets.length && p.finished.delete(p.offsets[p.head]!)) p.head++
    if (p.head >= trackerCompactAfterEntries && p.head * 2 >= p.offsets.length) {
      p.offsets = p.offsets.slice(p.head)
      p.head = 0
    }
  }

  /** The partitions whose committable offset moved past what was last marked committed. */
  commitsDue (): PartitionOffset[] {
    const due: PartitionOffset[] = []
    for (const p of this.#partitions.values()) {
      const next = p.head < p.offsets.length ? p.offsets[p.head]! : p.end
      if (p.committed === undefined || next > p.committed) due.push({ topic: p.topic, partition: p.partition, offset: next.toString() })
    }
    return due
  }

  /** Records commits that went through, so they are not due again. */
  markCommitted (offsets: readonly PartitionOffset[]): void {
    for (const { topic, partition, offset } of offsets) {
      const p = this.#partition(topic, partition)
      const at = BigInt(offset)
      if (p !== undefined && (p.committed === undefined || at > p.committed)) p.committed = at
    }
  }
}
