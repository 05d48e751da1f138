// Every bound of the notifier, in one place. Units go last. Those a deployment (or the local
// stack, whose tests need short retries) may change are read from NOTIFIER_* env (config.ts).

export interface NotifierLimits {
  /** One HTTP attempt, connect to the last byte of the answer; past it the attempt failed. */
  deliveryTimeoutMs: number
  /** Attempts in flight across all endpoints: a slow endpoint holds only its share. */
  deliveriesInFlightMax: number
  /** Attempts in flight to one endpoint (one per payment at a time anyway, by the order rule). */
  deliveriesInFlightPerEndpointMax: number
  /** Retries: capped exponential backoff with full jitter from the delivery's attempt count. */
  retryBaseDelayMs: number
  retryDelayMsMax: number
  /** A delivery is retried until this long after it was made (or redelivered), then failed. */
  retryWindowMs: number
  /** An endpoint is disabled once it has failed this many attempts in a row … */
  disableAfterFailuresMin: number
  /** … and has been failing (no success) for at least this long. */
  disableAfterFailingMs: number
  /** How often the set of merchants with endpoints is read again (merchant-filter.ts). */
  endpointCacheRefreshIntervalMs: number
  /** How often the delivery queue in Postgres is looked at when nothing woke it. */
  dispatchPollIntervalMs: number
  /** Wakes (deliveries written, attempts ended) this close together make one look at the queue. */
  dispatchWakeDelayMs: number
  /** Due deliveries claimed per look. */
  dispatchBatchMax: number
  /** A claimed delivery is the claimer's until this long after the claim (a crash frees it then). */
  leaseMs: number
  /** How much of an endpoint's answer is read (and up to how much of it recorded as the error). */
  responseBytesMax: number
  responseErrorCharsMax: number
  /** Request bodies of the API; endpoint URLs; event types per endpoint; endpoints per merchant. */
  bodyBytesMax: number
  urlCharsMax: number
  eventTypesPerEndpointMax: number
  endpointsPerMerchantMax: number
  /** Old secret's validity after a roll: default and most. */
  rollGracePeriodSDefault: number
  rollGracePeriodSMax: number
  /** GET /events/{id}: the newest attempts shown per delivery (all are kept). */
  attemptsShownPerDeliveryMax: number
  /** GET /events pages. */
  pageSizeDefault: number
  pageSizeMax: number
  /** Postgres. */
  poolConnectionsMax: number
  statementTimeoutMs: number
  /** Retrying a Postgres write of consumed events (the batch is not committed meanwhile). */
  storeRetryBaseDelayMs: number
  storeRetryDelayMsMax: number
  /** Merchant events in one Postgres statement (what was consumed meanwhile); a larger batch goes alone. */
  eventsPerStatementMax: number
  /** Kafka consumer: partitions handed over at once, messages in flight (handed over, not yet written). */
  partitionsConsumedConcurrently: number
  messagesInFlightMax: number
  /**
   * A fetch that brought messages is followed by the next no sooner than this: a trickle arrives in
   * fewer, larger fetches (each fetch over 64 partitions costs far more than the events in it).
   * Webhooks are not a checkout page's latency (a receiver sees them a fraction of a second later
   * at most), so ten times the processor's 20 ms: under load the notifier's fetches were a third of
   * the broker's fetch requests, each over all 64 partitions, for no one's benefit.
   */
  fetchPacingMs: number
  /** The field key ring is read again on a value sealed under an unknown key (a rotation), at most this often. */
  keyRingReloadIntervalMsMin: number
  offsetCommitIntervalMs: number
  closeDrainTimeoutMs: number
  sessionTimeoutMs: number
  fetchPartitionBytesMax: number
  fetchBytesMax: number
  fetchWaitMsMax: number
  /** API keys file, as on the nodes and the reporting service. */
  apiKeysRetryIntervalMs: number
  apiKeysPollIntervalMs: number
  /** SIGTERM: attempts in flight get this long to finish (their leases expire otherwise). */
  shutdownDrainMs: number
  /** Query string bytes of a request; anything longer is refused before parsing. */
  queryBytesMax: number
  /** A request's headers and body must have arrived within this (nginx streams bodies unbuffered). */
  requestDeadlineMs: number
  /** How often Node looks for requests past their deadline. */
  requestDeadlineCheckIntervalMs: number
}

export const defaultNotifierLimits: Readonly<NotifierLimits> = {
  deliveryTimeoutMs: 10_000,
  deliveriesInFlightMax: 64,
  deliveriesInFlightPerEndpointMax: 4,
  // Stripe-like: seconds at first, then hours apart, for three days.
  retryBaseDelayMs: 30_000,
  retryDelayMsMax: 3_600_000,
  retryWindowMs: 3 * 24 * 3_600_000,
  disableAfterFailuresMin: 20,
  disableAfterFailingMs: 3 * 24 * 3_600_000,
  endpointCacheRefreshIntervalMs: 1_000,
  dispatchPollIntervalMs: 250,
  dispatchWakeDelayMs: 5,
  dispatchBatchMax: 128,
  leaseMs: 30_000,
  responseBytesMax: 4_096,
  responseErrorCharsMax: 200,
  bodyBytesMax: 8_192,
  urlCharsMax: 2_048,
  eventTypesPerEndpointMax: 32,
  endpointsPerMerchantMax: 16,
  rollGracePeriodSDefault: 86_400,
  rollGracePeriodSMax: 7 * 86_400,
  attemptsShownPerDeliveryMax: 50,
  pageSizeDefault: 20,
  pageSizeMax: 100,
  poolConnectionsMax: 8,
  statementTimeoutMs: 5_000,
  storeRetryBaseDelayMs: 100,
  storeRetryDelayMsMax: 5_000,
  eventsPerStatementMax: 1_000,
  partitionsConsumedConcurrently: 8,
  messagesInFlightMax: 5_000,
  fetchPacingMs: 200,
  keyRingReloadIntervalMsMin: 5_000,
  offsetCommitIntervalMs: 1_000,
  closeDrainTimeoutMs: 5_000,
  sessionTimeoutMs: 30_000,
  fetchPartitionBytesMax: 1_048_576,
  fetchBytesMax: 10_485_760,
  fetchWaitMsMax: 500,
  apiKeysRetryIntervalMs: 2_000,
  apiKeysPollIntervalMs: 2_000,
  shutdownDrainMs: 5_000,
  queryBytesMax: 2_048,
  requestDeadlineMs: 10_000,
  requestDeadlineCheckIntervalMs: 1_000,
}

/** The limits a deployment may set, by env name. */
export const limitEnvNames: Readonly<Partial<Record<keyof NotifierLimits, string>>> = {
  deliveryTimeoutMs: 'NOTIFIER_DELIVERY_TIMEOUT_MS',
  deliveriesInFlightMax: 'NOTIFIER_DELIVERIES_IN_FLIGHT_MAX',
  deliveriesInFlightPerEndpointMax: 'NOTIFIER_DELIVERIES_IN_FLIGHT_PER_ENDPOINT_MAX',
  retryBaseDelayMs: 'NOTIFIER_RETRY_BASE_DELAY_MS',
  retryDelayMsMax: 'NOTIFIER_RETRY_DELAY_MS_MAX',
  retryWindowMs: 'NOTIFIER_RETRY_WINDOW_MS',
  disableAfterFailuresMin: 'NOTIFIER_DISABLE_AFTER_FAILURES_MIN',
  disableAfterFailingMs: 'NOTIFIER_DISABLE_AFTER_FAILING_MS',
  dispatchPollIntervalMs: 'NOTIFIER_DISPATCH_POLL_INTERVAL_MS',
  leaseMs: 'NOTIFIER_LEASE_MS',
  fetchPacingMs: 'NOTIFIER_FETCH_PACING_MS',
}

export class NotifierConfigError extends Error {
  readonly code = 'notifier_config_invalid'
  constructor (message: string) {
    super(`notifier_config_invalid: ${message}`)
    this.name = 'NotifierConfigError'
  }
}

/** The defaults with what `env` sets; checked against each other. */
export function limitsFromEnv (env: NodeJS.ProcessEnv): NotifierLimits {
  const limits: NotifierLimits = { ...defaultNotifierLimits }
  for (const [field, name] of Object.entries(limitEnvNames) as Array<[keyof NotifierLimits, string]>) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    const value = Number(raw)
    if (!Number.isSafeInteger(value) || value < 0) throw new NotifierConfigError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`)
    limits[field] = value
  }
  checkLimits(limits)
  return limits
}

export function checkLimits (l: NotifierLimits): void {
  if (l.deliveriesInFlightMax < 1 || l.deliveriesInFlightPerEndpointMax < 1) throw new NotifierConfigError('in-flight bounds must be at least 1')
  if (l.deliveriesInFlightPerEndpointMax > l.deliveriesInFlightMax) throw new NotifierConfigError('deliveriesInFlightPerEndpointMax exceeds deliveriesInFlightMax')
  if (l.retryBaseDelayMs < 1 || l.retryDelayMsMax < l.retryBaseDelayMs) throw new NotifierConfigError('retry delays: 1 <= base <= max')
  // A lease shorter than an attempt would let a second notifier send the same delivery meanwhile.
  if (l.leaseMs <= l.deliveryTimeoutMs) throw new NotifierConfigError('leaseMs must exceed deliveryTimeoutMs')
  if (l.disableAfterFailuresMin < 1) throw new NotifierConfigError('disableAfterFailuresMin must be at least 1')
}
