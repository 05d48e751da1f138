// Every bound of the sandbox PSP, in one place, with its working. Units go last.
// `config.ts` may override some of these from the environment (tests shrink the webhook timings);
// `assertPspLimits` checks how they relate, once, at start-up.

import assert from 'node:assert/strict'

export interface PspLimits {
  /** Charge request bodies. The largest valid one (every field at its limit) is ~1 KiB. */
  bodyBytesMax: number
  /** Admin bodies carry discrepancy lists (up to `discrepancyRefsMax` references). */
  adminBodyBytesMax: number
  /** A slow client gets this long to send its whole request. */
  requestTimeoutMs: number
  /** Largest amount in minor units, as the payment node: 10^12, far below 2^53. */
  amountMinorMax: number
  /** Stripe's limit for idempotency keys. */
  idempotencyKeyLengthMax: number
  referenceLengthMax: number
  merchantIdLengthMax: number
  paymentMethodLengthMax: number
  descriptionLengthMax: number
  /**
   * POST /v1/charges requests being worked on at once (sleeping in simulated latency, waiting for
   * the disk). Also bounds the in-progress idempotency key set, which holds one key per request.
   * Past it, the PSP answers 429 like a real one under a concurrency limit.
   */
  chargeRequestsInFlightMax: number
  /** Responses held open to simulate a timeout after the charge; past it the socket is destroyed at once. */
  heldResponsesMax: number
  /** Longest simulated latency, whatever the distribution's tail says. */
  latencyMsMax: number
  /** Longest a timeout-after-charge response is held. */
  timeoutHoldMsMax: number
  /** Longest delay before an async (pending) charge reaches its final status. */
  asyncDelayMsMax: number
  /** Longest authorization window (manual capture) that may be configured. */
  authorizationWindowMsMax: number
  /** Writes combined into one fsynced LevelDB batch by the group committer (operations, not writes). */
  writeBatchOpsMax: number
  /** Writes waiting for the group committer. Charge requests are bounded above; this is a backstop. */
  writeQueueMax: number
  /**
   * Longest a webhook delivery outcome waits to be written. Under load it rides in a charge's
   * batch long before; idle, the stats show it this many ms after the delivery. A crash within
   * it resends the event (at least once).
   */
  deferredWriteFlushMs: number
  /**
   * A batch starts this long before the earliest time by which one of its writes must be on disk
   * (a charge's: the end of its simulated latency): about one fsync on a busy shared disk.
   */
  writeBatchLeadMs: number
  /** Pending charges completed per scheduler pass. */
  asyncCompletionBatchMax: number
  /** Webhook deliveries in flight at once. */
  webhookDeliveriesInFlightMax: number
  /** Delivery attempts per event (first attempt included) before it is given up as failed. */
  webhookAttemptsMax: number
  /** Backoff before retry n is base * 2^(n-1), capped, with +-20 % jitter. */
  webhookRetryBaseMs: number
  webhookRetryMaxMs: number
  /** One delivery attempt: connect + headers + body. A receiver slower than this counts as a failure. */
  webhookDeliveryTimeoutMs: number
  /** Largest random extra delay an operator may configure for first deliveries. */
  webhookDelayMsMax: number
  /** How long a stale (reordered) event waits before checking again that the newer one was delivered. */
  webhookReorderRecheckMs: number
  /**
   * Outbox entries the dispatcher keeps in its in-memory due queue (~100 bytes each: sequence,
   * due time; bodies stay on disk). Past it, new entries wait on disk only, and are read back
   * (a scan of o/) once the queue is down to half: ordering by due time holds within the queue.
   */
  webhookQueueEntriesMax: number
  /** Outbox entries read per iterator step while (re)filling the queue from disk. */
  webhookRefillChunkEntries: number
  /** After a failed refill scan, try again this much later. */
  webhookRefillRetryMs: number
  /** Settlement rows read from LevelDB per iterator step; also the rows formatted per write. */
  settlementReadBatchRows: number
  /** References listed in one discrepancy switch (missingRows, amountDelta, ...). */
  discrepancyRefsMax: number
  /** Fabricated rows one report may carry. */
  discrepancyExtraRowsMax: number
  /** Charges generated per request, and per LevelDB batch while generating. */
  generateCountMax: number
  generateBatchCharges: number
  /** Bulk generations running at once (each holds one batch in memory). */
  generationsInFlightMax: number
  /** Graceful shutdown: time to finish in-flight requests and deliveries. */
  shutdownDrainMsMax: number
}

export const defaultPspLimits: PspLimits = {
  bodyBytesMax: 16 * 1024,
  adminBodyBytesMax: 4 * 1024 * 1024,
  requestTimeoutMs: 10_000,
  amountMinorMax: 1_000_000_000_000,
  idempotencyKeyLengthMax: 255,
  referenceLengthMax: 128,
  merchantIdLengthMax: 128,
  paymentMethodLengthMax: 128,
  descriptionLengthMax: 500,
  chargeRequestsInFlightMax: 4096,
  heldResponsesMax: 1024,
  latencyMsMax: 60_000,
  timeoutHoldMsMax: 120_000,
  asyncDelayMsMax: 600_000,
  // 31 days: longer than any card network keeps an authorization.
  authorizationWindowMsMax: 31 * 24 * 60 * 60_000,
  // A few hundred charges per fsync at most; each charge is ~6 operations.
  writeBatchOpsMax: 4096,
  writeQueueMax: 8192,
  deferredWriteFlushMs: 100,
  writeBatchLeadMs: 5,
  asyncCompletionBatchMax: 256,
  webhookDeliveriesInFlightMax: 32,
  // 8 attempts with a 30 s cap spans ~2 min: long enough to ride out a node restart.
  webhookAttemptsMax: 8,
  webhookRetryBaseMs: 500,
  webhookRetryMaxMs: 30_000,
  webhookDeliveryTimeoutMs: 10_000,
  webhookDelayMsMax: 600_000,
  webhookReorderRecheckMs: 50,
  // 200,000 entries is ~20 MB; at 1,000 events/s, 200 s of a receiver being down.
  webhookQueueEntriesMax: 200_000,
  webhookRefillChunkEntries: 1_000,
  webhookRefillRetryMs: 1_000,
  settlementReadBatchRows: 1_000,
  discrepancyRefsMax: 100_000,
  discrepancyExtraRowsMax: 1_000_000,
  generateCountMax: 5_000_000,
  // 10,000 charges = 10,000 puts (~1 MB; 4x with `retrievable`): large enough to amortise the
  // fsync, small enough that the NDJSON answer flows while generating.
  generateBatchCharges: 10_000,
  generationsInFlightMax: 2,
  shutdownDrainMsMax: 10_000,
}

export function assertPspLimits (limits: PspLimits): void {
  const positiveInt = (name: keyof PspLimits): void => {
    assert.ok(Number.isSafeInteger(limits[name]) && limits[name] > 0, `${name} must be a positive integer`)
  }
  for (const name of Object.keys(defaultPspLimits) as Array<keyof PspLimits>) positiveInt(name)
  // Fee math multiplies the amount by basis points (140; 1,000 would be a 10 % fee): keep it exact.
  assert.ok(limits.amountMinorMax * 1_000 <= Number.MAX_SAFE_INTEGER,
    'amountMinorMax must leave room for fee math (amount * basis points) within safe integers')
  // A charge write is ~6 operations; a batch must hold at least one.
  assert.ok(limits.writeBatchOpsMax >= 16, 'writeBatchOpsMax must hold a charge write')
  assert.ok(limits.writeQueueMax >= limits.chargeRequestsInFlightMax,
    'writeQueueMax must cover every charge request in flight')
  assert.ok(limits.webhookRetryBaseMs <= limits.webhookRetryMaxMs, 'webhookRetryBaseMs must not exceed webhookRetryMaxMs')
  assert.ok(limits.webhookAttemptsMax <= 30, 'webhookAttemptsMax above 30 overflows the backoff exponent')
  assert.ok(limits.generateBatchCharges <= limits.generateCountMax, 'generateBatchCharges must not exceed generateCountMax')
  assert.ok(limits.webhookQueueEntriesMax >= 2, 'webhookQueueEntriesMax must be at least 2 (refills start at half)')
}
