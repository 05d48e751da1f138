// Every bound of the CDC relay, in one place, with its working. Units go last.
// config.ts may override some from the environment; assertRelayLimits checks how they relate.

import assert from 'node:assert/strict'

export interface RelayLimits {
  /**
   * Change-log entries per Kafka produce request, and so per cursor write (the published entries
   * are deleted in the same LevelDB batch as the cursor advance). Also the read iterator's limit.
   */
  publishBatchEventsMax: number
  /**
   * Bytes of message values + keys + headers per produce request. Kafka's default
   * message.max.bytes (1 MiB) applies per partition's record batch; half of it leaves room for
   * the record overhead even if a whole batch lands in one partition.
   */
  publishBatchBytesMax: number
  /**
   * Produce requests in flight at once. Must stay 1: per-key order across retries relies on a
   * batch being sent only after the previous one was acknowledged (see relay.ts).
   */
  publishInFlightBatchesMax: number
  /** One publish attempt, acknowledgement included; past it the attempt counts as failed. */
  publishTimeoutMs: number
  /** TCP connect bound per broker. */
  kafkaConnectionTimeoutMs: number
  /**
   * Under load, a batch that is not full starts no sooner than this after the previous publish
   * started, so each produce request carries more events (less CPU per event), at up to this much
   * added latency per event. "Under load" = the previous batch had at least
   * publishPacingAfterBatchEventsMin events; below that (light traffic) the relay publishes at once.
   */
  publishPacingMs: number
  publishPacingAfterBatchEventsMin: number
  /**
   * Light traffic: a publish starts no sooner than this after the previous one started. An idle
   * relay publishes at once; a trickle (each commit a batch of one or two) shares produce
   * requests: measured end to end at 100 payments/s over 3 nodes, one produce request per event
   * cost the relay workers and the broker more than the events themselves; at 150 payments/s,
   * 30 ms (against 10) took the nodes from 5.2 to 4.3 ms of CPU per payment. Adds at most this
   * much latency per event, once on a payment's way to the processor.
   */
  publishLightPacingMs: number
  /**
   * A batch with no `payment.created` (or `payment.refund_created`, `payment.capture_requested`) in it only feeds projections (outcomes, webhooks, operator
   * moves): nobody waits on it, since checkout clients see outcomes on the node. It waits until its
   * oldest entry is this old, unless a `payment.created` joins it (whose publish is due anyway) or
   * it fills, so outcomes ride along with the next created event instead of paying a produce
   * request, a consumer fetch and a projection statement of their own. Adds at most this much to
   * an outcome's way into Postgres, never to a charge's way to the processor.
   */
  publishProjectionOnlyLingerMs: number
  /**
   * The handoff cache (handoff.ts): change events the node just committed, kept in the relay's
   * memory so they need not be read back from LevelDB. Past these the node's chunks are dropped
   * and the relay reads from disk until it has caught up (e.g. while Kafka is down).
   */
  handoffEventsMax: number
  handoffBytesMax: number
  /** Retry backoff after a failed publish: base * 2^attempt, jittered, capped. */
  retryBackoffBaseMs: number
  retryBackoffMaxMs: number
  /**
   * Disk budget: unpublished change-log entries past which the node sheds new payments
   * (503 backlog_full). At ~1 KiB per entry the default is ~1 GiB of LevelDB data.
   */
  backlogEventsMax: number
  /** Below this the node admits new payments again (hysteresis, so it does not flap). */
  backlogResumeEventsMax: number
  /** Retry-After sent with backlog_full. */
  backlogRetryAfterS: number
  /** Shutdown: time to finish the publish in flight and write the cursor. */
  stopDrainMsMax: number
  /** Shutdown: time to close the Kafka connections after the drain. */
  producerCloseMsMax: number
  /** Shutdown: past this after asking the worker to stop, it is terminated. */
  stopWorkerMsMax: number
  /**
   * Linux nice level of the relay's worker thread (0 = same as the accept path, 19 = lowest).
   * Under CPU contention the accept path then wins and the relay uses the slack; if the slack is
   * not enough for long, the lag grows until the disk budget sheds new payments, which gives the
   * CPU back. Linux only: elsewhere the nice value is per process and is left alone.
   */
  workerNiceLevel: number
  /** Start-up: the worker must have opened the store and read its cursor within this. */
  startWorkerMsMax: number
  /** How often the worker recounts the change log (entries actually present) for the metrics. */
  changelogScanIntervalMs: number
  /**
   * A recount reads at most this many keys (~50 ms of the worker's time); past it the gauge falls
   * back to the lag, which is what the change log holds when deletion works.
   */
  changelogScanEntriesMax: number
}

export const defaultRelayLimits: RelayLimits = {
  publishBatchEventsMax: 1000,
  publishBatchBytesMax: 512 * 1024,
  publishInFlightBatchesMax: 1,
  publishTimeoutMs: 10_000,
  kafkaConnectionTimeoutMs: 1_000,
  publishPacingMs: 50,
  // A batch this big means a publish round trip gathers dozens of events: the rate is high
  // enough that pacing pays for itself, and once on it keeps batches big, so it stays on.
  publishPacingAfterBatchEventsMin: 32,
  publishLightPacingMs: 20,
  publishProjectionOnlyLingerMs: 100,
  // ~10 s of a busy node's events: enough for any pacing or retry hiccup.
  handoffEventsMax: 50_000,
  handoffBytesMax: 32 * 1024 * 1024,
  retryBackoffBaseMs: 100,
  retryBackoffMaxMs: 5_000,
  backlogEventsMax: 1_000_000,
  backlogResumeEventsMax: 900_000,
  backlogRetryAfterS: 5,
  stopDrainMsMax: 5_000,
  producerCloseMsMax: 2_000,
  stopWorkerMsMax: 8_000,
  workerNiceLevel: 10,
  startWorkerMsMax: 10_000,
  changelogScanIntervalMs: 2_000,
  changelogScanEntriesMax: 100_000,
}

export function assertRelayLimits (limits: RelayLimits): void {
  const positive = (name: keyof RelayLimits): void =>
    assert.ok(Number.isSafeInteger(limits[name]) && limits[name] > 0, `${name} must be a positive integer`)
  for (const name of ['publishBatchEventsMax', 'publishBatchBytesMax', 'publishPacingAfterBatchEventsMin', 'handoffEventsMax', 'handoffBytesMax', 'publishTimeoutMs', 'kafkaConnectionTimeoutMs',
    'retryBackoffBaseMs', 'retryBackoffMaxMs', 'backlogEventsMax', 'backlogRetryAfterS', 'stopDrainMsMax',
    'producerCloseMsMax', 'stopWorkerMsMax', 'startWorkerMsMax', 'changelogScanIntervalMs', 'changelogScanEntriesMax'] as const) {
    positive(name)
  }
  assert.equal(limits.publishInFlightBatchesMax, 1, 'publishInFlightBatchesMax must be 1: per-key order relies on it')
  assert.ok(Number.isInteger(limits.workerNiceLevel) && limits.workerNiceLevel >= 0 && limits.workerNiceLevel <= 19,
    'workerNiceLevel must be 0..19')
  assert.ok(Number.isSafeInteger(limits.publishPacingMs) && limits.publishPacingMs >= 0 && limits.publishPacingMs <= 1_000,
    'publishPacingMs must be 0..1000')
  assert.ok(Number.isSafeInteger(limits.publishLightPacingMs) && limits.publishLightPacingMs >= 0 &&
    limits.publishLightPacingMs <= limits.publishPacingMs, 'publishLightPacingMs must be 0..publishPacingMs')
  assert.ok(Number.isSafeInteger(limits.publishProjectionOnlyLingerMs) && limits.publishProjectionOnlyLingerMs >= 0 &&
    limits.publishProjectionOnlyLingerMs <= 1_000, 'publishProjectionOnlyLingerMs must be 0..1000')
  assert.ok(limits.retryBackoffBaseMs <= limits.retryBackoffMaxMs, 'retryBackoffBaseMs must not exceed retryBackoffMaxMs')
  assert.ok(limits.kafkaConnectionTimeoutMs < limits.publishTimeoutMs, 'a connect must fit in one publish attempt')
  assert.ok(limits.backlogResumeEventsMax >= 0 && limits.backlogResumeEventsMax < limits.backlogEventsMax,
    'backlogResumeEventsMax must be below backlogEventsMax')
  assert.ok(limits.stopDrainMsMax + limits.producerCloseMsMax < limits.stopWorkerMsMax,
    'the worker needs time to close after its drain')
}
