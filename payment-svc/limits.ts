// Every bound of the payment node, in one place, with its working. Units go last.
// `config.ts` may override some of these from the environment; `assertLimits` checks how they
// relate, once, at start-up.

import assert from 'node:assert/strict'

export interface NodeLimits {
  /** Ring buffer slots for writes waiting for the disk. Power of two. */
  ringCapacity: number
  /** Writes per LevelDB batch. Past ~100 the batch cost is CPU, not fsync (PERF-NOTES). */
  batchSizeMax: number
  /**
   * How long a write may wait for company before it is flushed while the disk is idle.
   * 0 = write as soon as no batch is in flight: a fixed timer capped throughput at ~14k/s at
   * 64 connections in PERF-NOTES (2 ms wait + write + replies per cycle), while "write at once
   * when idle, accumulate while a batch is in flight" reached the bare-HTTP ceiling.
   */
  flushIntervalMs: number
  /** Request body bytes. The largest valid body (metadata at its limits) is ~6 KiB. */
  bodyBytesMax: number
  /**
   * The whole-request deadline: headers and body must have arrived this long after the request
   * began, however steadily a client dribbles bytes (nginx's client_body_timeout is per read, so
   * nginx streams bodies to the node unbuffered and this deadline is the one that holds). Node
   * checks it every requestDeadlineCheckIntervalMs, so a request is cut off within
   * requestDeadlineMs + requestDeadlineCheckIntervalMs.
   */
  requestDeadlineMs: number
  requestDeadlineCheckIntervalMs: number
  /** Long-poll wait, and how many long-polls a node holds open at once. */
  longPollWaitMsMax: number
  longPollWaitersMax: number
  /**
   * Long-polls one merchant may hold on one node; past it, 429 `long_poll_limit`. Below
   * longPollWaitersMax so one merchant cannot take every slot. The e2e bench holds at most
   * 2,048 polls in all (bench/lib/checkout-poller.ts), spread over the nodes.
   */
  longPollsPerMerchantMax: number
  /**
   * Wrong or unknown API keys accepted from one client IP per window on this node; past it the
   * IP gets 429 `auth_attempts_exceeded` (even with a right key) until the window ends. Each
   * node counts alone, so a client spread over N nodes gets at most N × this. A request without
   * an Authorization header is not an attempt. At most failedKeyTrackedIpsMax IPs are tracked
   * (the oldest window is dropped first), so a spray of source addresses cannot grow memory.
   */
  failedKeyAttemptsMax: number
  failedKeyWindowMs: number
  failedKeyTrackedIpsMax: number
  /**
   * A move to `processing` (the processor's claim before it charges) wakes long-polls only after
   * this, with the payment as it is then; any other change wakes them at once. The outcome
   * usually follows within a PSP round trip (~50–400 ms), so a checkout page waiting for it makes
   * one request instead of two. 0 = wake at once.
   */
  processingWakeDelayMs: number
  /** Largest amount in minor units: 10^12 = 10 billion EUR, far below 2^53. */
  amountMinorMax: number
  descriptionLengthMax: number
  customerRefLengthMax: number
  paymentMethodLengthMax: number
  metadataKeysMax: number
  metadataKeyLengthMax: number
  metadataValueLengthMax: number
  /** Checkout ids admitted but not yet durable (queued + being read + in the batch in flight). */
  inflightIdsMax: number
  /**
   * Internal writers (transitions, webhooks) that find their id's previous write still in flight
   * wait for it instead of being refused: at most this many at once, each looking at most
   * claimAttemptsMax times (another writer may take the id first); past either, refused as before.
   */
  claimWaitersMax: number
  claimAttemptsMax: number
  /** Graceful shutdown: time to drain the ring and answer, before the process exits anyway. */
  shutdownDrainMsMax: number
  /** The node's own stuck-payment view: how often it scans its open-payment index, how much of
   *  it at most (200k entries of ~40 bytes ≈ 8 MB read per scan), and the age that counts as stale. */
  openScanIntervalMs: number
  openScanEntriesMax: number
  openStaleAfterMs: number
  /**
   * The known-id filter (a Bloom filter in front of the idempotency read; `id-filter.ts`): fixed
   * size, a power of two. 8 MiB = 67M bits holds ~6.7M ids at ~1 % false positives (10 bits per
   * id, 7 probes); past that more new ids fall through to LevelDB (slower, never wrong).
   */
  idFilterBytes: number
  /**
   * LevelDB's memtable (classic-level `writeBufferSize`). A payment writes ~600 bytes (payment,
   * change-log entry, open-index entry), so LevelDB's 4 MiB default flushes a memtable to a new
   * level-0 table every ~7,000 payments and keeps its compaction thread busy: measured straight
   * against one node, 7.2 µs of CPU per payment over a 20 s run at ~29k/s; with 32 MiB, 2.8 µs.
   * Costs at most two of them in memory (the active and the one being flushed) = 64 MiB, and
   * up to 32 MiB of write-ahead log replayed at a restart (well under a second here).
   */
  leveldbWriteBufferBytes: number
  /**
   * `POST /internal/transitions`: transitions in one request, and its body. A processor sends what
   * it gathered for this node while its previous request was in flight; an item is at most
   * ~900 bytes (a 500-character failure message, ids, a PSP reference), so 256 fit in 256 KiB.
   */
  transitionsPerBatchMax: number
  transitionBatchBodyBytesMax: number
  /**
   * While the API keys file is unreadable or invalid (every key refused: fail closed), it is read
   * again this often, so a repaired file is in force within this even without a SIGHUP or
   * `POST /admin/reload-keys`. Also the `Retry-After` of 503 `api_keys_unavailable`.
   */
  apiKeysRetryIntervalMs: number
  /**
   * The API keys file is looked at (one stat) this often and read again when it changed: a key
   * issued, rolled or revoked (scripts/api-keys.ts) is in force on every node within this.
   */
  apiKeysPollIntervalMs: number
  /**
   * Refunds one payment may have (all statuses): they live inside the payment record, which is
   * rewritten and published whole on every change, so their number is bounded.
   */
  refundsPerPaymentMax: number
  refundReasonLengthMax: number
  refundIdempotencyKeyLengthMax: number
}

export const defaultLimits: NodeLimits = {
  ringCapacity: 4096,
  batchSizeMax: 512,
  flushIntervalMs: 0,
  bodyBytesMax: 16 * 1024,
  requestDeadlineMs: 10_000,
  requestDeadlineCheckIntervalMs: 1_000,
  longPollWaitMsMax: 30_000,
  longPollWaitersMax: 10_000,
  longPollsPerMerchantMax: 5_000,
  // The API tests send 7–15 wrong keys per node from 127.0.0.1 (measured; mostly the fuzz
  // test's authorization cases); an attacker's burst of 300 over 3 nodes gets ≤ 150 401s.
  failedKeyAttemptsMax: 50,
  failedKeyWindowMs: 60_000,
  failedKeyTrackedIpsMax: 10_000,
  processingWakeDelayMs: 1_000,
  amountMinorMax: 1_000_000_000_000,
  descriptionLengthMax: 500,
  customerRefLengthMax: 128,
  paymentMethodLengthMax: 128,
  metadataKeysMax: 20,
  metadataKeyLengthMax: 40,
  metadataValueLengthMax: 500,
  // Ring slots plus one batch in flight plus reads in progress; a multiple keeps 503s for the ring.
  inflightIdsMax: 4096 * 2 + 512,
  claimWaitersMax: 4096,
  claimAttemptsMax: 4,
  shutdownDrainMsMax: 10_000,
  openScanIntervalMs: 10_000,
  openScanEntriesMax: 200_000,
  openStaleAfterMs: 60_000,
  idFilterBytes: 8 * 1024 * 1024,
  leveldbWriteBufferBytes: 32 * 1024 * 1024,
  transitionsPerBatchMax: 256,
  transitionBatchBodyBytesMax: 256 * 1024,
  apiKeysRetryIntervalMs: 5_000,
  apiKeysPollIntervalMs: 2_000,
  refundsPerPaymentMax: 100,
  refundReasonLengthMax: 500,
  refundIdempotencyKeyLengthMax: 255,
}

export function assertLimits (limits: NodeLimits): void {
  const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
  assert.ok(isPowerOfTwo(limits.ringCapacity), 'ringCapacity must be a power of two')
  assert.ok(limits.batchSizeMax >= 1 && limits.batchSizeMax <= limits.ringCapacity,
    'batchSizeMax must be within 1..ringCapacity')
  assert.ok(limits.flushIntervalMs >= 0 && limits.flushIntervalMs <= 100, 'flushIntervalMs must be 0..100')
  assert.ok(Number.isSafeInteger(limits.amountMinorMax) && limits.amountMinorMax > 0,
    'amountMinorMax must be a positive safe integer')
  assert.ok(limits.inflightIdsMax >= limits.ringCapacity + limits.batchSizeMax,
    'inflightIdsMax must cover the ring and one batch in flight')
  // The largest valid body must fit the body limit, or valid requests would be refused.
  const metadataBytesMax = limits.metadataKeysMax * (limits.metadataKeyLengthMax + limits.metadataValueLengthMax + 8)
  const bodyBytesNeeded = 256 + limits.descriptionLengthMax + limits.customerRefLengthMax +
    limits.paymentMethodLengthMax + metadataBytesMax
  assert.ok(limits.bodyBytesMax >= bodyBytesNeeded,
    `bodyBytesMax ${limits.bodyBytesMax} must hold the largest valid body (${bodyBytesNeeded})`)
  assert.ok(isPowerOfTwo(limits.idFilterBytes) && limits.idFilterBytes >= 1024, 'idFilterBytes must be a power of two ≥ 1024')
  assert.ok(Number.isInteger(limits.leveldbWriteBufferBytes) && limits.leveldbWriteBufferBytes >= 1024 * 1024 &&
    limits.leveldbWriteBufferBytes <= 256 * 1024 * 1024, 'leveldbWriteBufferBytes must be within 1..256 MiB')
  assert.ok(limits.claimWaitersMax >= 0 && limits.claimAttemptsMax >= 1, 'claimWaitersMax must be ≥ 0, claimAttemptsMax ≥ 1')
  // A request larger than one group-commit batch (or the ring) only spans several batches, and an
  // item that finds the ring full is refused alone (overloaded), so no relation to those is needed.
  assert.ok(limits.transitionsPerBatchMax >= 1, 'transitionsPerBatchMax must be ≥ 1')
  assert.ok(limits.transitionBatchBodyBytesMax >= limits.transitionsPerBatchMax * 1024,
    'transitionBatchBodyBytesMax must hold transitionsPerBatchMax items of up to 1 KiB')
  assert.ok(Number.isSafeInteger(limits.processingWakeDelayMs) && limits.processingWakeDelayMs >= 0 &&
    limits.processingWakeDelayMs <= 10_000, 'processingWakeDelayMs must be 0..10000')
  assert.ok(Number.isSafeInteger(limits.apiKeysRetryIntervalMs) && limits.apiKeysRetryIntervalMs >= 100,
    'apiKeysRetryIntervalMs must be an integer ≥ 100')
  assert.ok(Number.isSafeInteger(limits.apiKeysPollIntervalMs) && limits.apiKeysPollIntervalMs >= 100,
    'apiKeysPollIntervalMs must be an integer ≥ 100')
  assert.ok(limits.refundsPerPaymentMax >= 1 && limits.refundsPerPaymentMax <= 1_000, 'refundsPerPaymentMax must be within 1..1000')
  assert.ok(limits.refundReasonLengthMax >= 1 && limits.refundIdempotencyKeyLengthMax >= 16 &&
    256 + limits.refundReasonLengthMax * 6 <= limits.bodyBytesMax, 'a refund body with the longest reason must fit bodyBytesMax')
  assert.ok(limits.longPollWaitMsMax <= 30_000, 'longPollWaitMsMax must stay under nginx proxy_read_timeout')
  assert.ok(limits.longPollsPerMerchantMax >= 1 && limits.longPollsPerMerchantMax <= limits.longPollWaitersMax,
    'longPollsPerMerchantMax must be within 1..longPollWaitersMax')
  assert.ok(limits.failedKeyAttemptsMax >= 1 && limits.failedKeyWindowMs >= 1_000 && limits.failedKeyTrackedIpsMax >= 1,
    'failedKeyAttemptsMax ≥ 1, failedKeyWindowMs ≥ 1000, failedKeyTrackedIpsMax ≥ 1')
  // nginx's client_body_timeout (10 s between reads) would otherwise be the tighter bound.
  assert.ok(limits.requestDeadlineMs >= 1_000 && limits.requestDeadlineCheckIntervalMs >= 100 &&
    limits.requestDeadlineCheckIntervalMs <= limits.requestDeadlineMs, 'requestDeadlineMs ≥ 1000, check interval 100..requestDeadlineMs')
}
