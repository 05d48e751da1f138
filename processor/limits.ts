// Every bound of the processor, in one place. Units go last.

export const processorLimits = {
  /** PSP charge calls in flight across all partitions of this processor. */
  pspCallsInFlightMax: 512,
  /** Attempts per charge before the event is dead-lettered (the idempotency key never changes). */
  pspAttemptsMax: 6,
  /** Backoff between PSP attempts: 100 ms doubling, capped at 5 s (≈ 10 s worst case for 6). */
  pspBackoffBaseDelayMs: 100,
  pspBackoffDelayMsMax: 5_000,
  /** undici phases for one PSP call. The PSP's own p99 is ~250 ms at the bench settings. */
  pspConnectTimeoutMs: 1_000,
  pspHeadersTimeoutMs: 5_000,
  pspBodyTimeoutMs: 5_000,
  pspConnectionsMax: 256,
  /**
   * PSP routing (issue #16, charge-flow.ts). A payment at a PSP whose breaker is open waits for
   * its probe (nothing is sent meanwhile, so no attempt is used) at most this long in all, then is
   * dead-lettered like exhausted retries: 2 minutes outlast the long fault profile's minute.
   */
  pspBreakerWaitMsMax: 120_000,
  /** One wait for an open breaker: at least this (no busy loop), at most the cap. */
  pspBreakerWaitDelayMsMin: 50,
  pspBreakerWaitDelayMsMax: 2_000,
  /**
   * A failover's lookup proves "no charge" only this long after our last attempt that may have
   * reached the PSP (a timeout, a reset): twice pspHeadersTimeoutMs (2 × 5 s), so a request the
   * PSP was still processing when we gave up has finished there (and shows) before we look.
   */
  failoverQuietMs: 10_000,
  /** Moves of one payment to another PSP in one drive (the routing lists hold few providers). */
  failoversPerPaymentMax: 2,
  /** Transitions on the owning node (through nginx's internal listener). */
  nodeConnectTimeoutMs: 1_000,
  nodeHeadersTimeoutMs: 5_000,
  nodeBodyTimeoutMs: 5_000,
  nodeConnectionsMax: 128,
  /**
   * Batched transitions (transition-batcher.ts): items per request, at most the node's own
   * transitionsPerBatchMax (256); queued per node at most the payments this processor can have
   * in flight (eventsInFlightMax), so the bound is only reached by a bug or a stuck node.
   */
  nodeTransitionsPerBatchMax: 256,
  nodeTransitionsQueuedPerNodeMax: 8_192,
  /** A node that is down or busy: retry the transition this many times before dead-lettering. */
  nodeAttemptsMax: 8,
  nodeBackoffBaseDelayMs: 50,
  nodeBackoffDelayMsMax: 2_000,
  /** Postgres. */
  poolConnectionsMax: 8,
  statementTimeoutMs: 10_000,
  /** Projection writes that fail (Postgres down) are retried with this backoff, forever: the
   *  batch is not committed to Kafka until they succeed, so nothing is skipped. */
  projectionBackoffBaseDelayMs: 100,
  projectionBackoffDelayMsMax: 5_000,
  /**
   * Sealed `payments.payment_method` values kept by checkout id (sealed-columns.ts), so a
   * payment's later events reuse its created event's seal: about the payments in flight.
   */
  sealedPaymentMethodsCachedMax: 8_192,
  /** PSP attempt rows buffered before a flush; a full buffer makes callers wait. */
  attemptLogRowsMax: 2_000,
  attemptLogFlushIntervalMs: 50,
  /** Events in one projection statement (everything handed over while the previous one ran, up to this). */
  projectionEventsPerStatementMax: 2_000,
  /** Kafka consumer. */
  sessionTimeoutMs: 30_000,
  /**
   * Fetched batches handed over at once; handing over is quick (the work runs after it). As many
   * as the topic has partitions: with fetch pacing every batch of a fetch waits out the pace after
   * its hand-over, and a batch beyond this bound would be handed over only after that wait.
   */
  partitionsConsumedConcurrently: 64,
  /**
   * Consumed events not yet finished (projected and, for a created payment, driven to a final
   * PSP answer), across all partitions. Fetching pauses at the bound: it caps memory and the
   * work queued behind the PSP slots. ~8k events ≈ 2k payments in flight, ≈ 4 s of work at 500/s.
   */
  eventsInFlightMax: 8_192,
  /** Offsets of finished events are committed this often (a crash re-delivers at most this much more). */
  offsetCommitIntervalMs: 200,
  /** On SIGTERM, events in flight get this long to finish before the consumer leaves (the rest are re-delivered). */
  closeDrainTimeoutMs: 10_000,
  fetchPartitionBytesMax: 1 << 20,
  fetchBytesMax: 8 << 20,
  /**
   * How long the broker may hold an empty fetch. Data ends the wait at once (minBytes 1), so this
   * costs no latency; it only sets how often an idle consumer asks again. At 50 ms, empty fetches
   * over 64 partitions cost the processor and the broker ~5 % of a core each, idle.
   */
  fetchWaitMsMax: 500,
  /**
   * A fetch that brought events is followed by the next no sooner than this after it came back
   * (lib/event-bus.ts fetchPacingMs): at a few hundred events a second, one fetch over the 64
   * partitions per event cost the processor and the broker more than the events did. 20 ms caps
   * it at 50 fetches a second, at most 20 ms more latency on the way to the processor.
   */
  fetchPacingMs: 20,
  /** Publishing dead letters. */
  dlqPublishTimeoutMs: 10_000,
  /** Watchdog. */
  watchdogIntervalMs: 5_000,
  watchdogStaleAfterMs: 30_000,
  watchdogBatchMax: 200,
  /**
   * Expiry (issue #14, processor/expiry.ts): a payment still awaiting the customer
   * (`requires_action`), or never charged (`pending`), this long after its creation is canceled.
   * A day: an outage of hours (Kafka, the PSP, the processors) never expires a payment a customer
   * is completing, and a charge found at the PSP wins over the expiry anyway.
   */
  actionExpiryMs: 24 * 60 * 60_000,
  pendingExpiryMs: 24 * 60 * 60_000,
  /**
   * Manual capture (issue #14): an authorization not captured this long after its payment's
   * creation is looked up at the PSP and, if still authorized, voided there and canceled on its
   * node. The backstop for a lost `charge.canceled` webhook of the PSP's own expiry: the sandbox
   * PSP's window (7 days by default) plus an hour, so the PSP's void normally comes first.
   */
  captureExpiryMs: 7 * 24 * 60 * 60_000 + 60 * 60_000,
} as const
