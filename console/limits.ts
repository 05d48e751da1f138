// The console's named limits (units last). Sessions, sign-in, paging and the calls it makes.

export const consoleLimits = {
  /** A session ends this long after its last request… */
  sessionIdleMs: 30 * 60_000,
  /** …and this long after sign-in, whatever happens. */
  sessionAbsoluteMs: 12 * 60 * 60_000,
  /** Failed sign-ins of one name within the window: past it the name is refused, right password or not. */
  loginFailuresPerNameMax: 5,
  /** Failed sign-ins from one client address within the window (any names). */
  // Every operator behind one NAT (or every test on one machine) shares an address: generous.
  loginFailuresPerIpMax: 100,
  loginFailureWindowMs: 15 * 60_000,
  /** How often a sign-in also drops failures older than the window (the table stays small under a guessing run). */
  loginFailuresSweepIntervalMs: 60_000,
  /** Form bodies (sign-in, resolve, replay, rerun). */
  bodyBytesMax: 8 * 1024,
  urlBytesMax: 4 * 1024,
  /** Payments per search page. */
  searchPageSize: 50,
  /** Flagged payments per queue page. */
  flaggedPageSize: 50,
  /** Rows of each kind on a timeline (events, attempts, webhooks, deliveries). */
  timelineRowsMax: 500,
  /**
   * Trace file bytes a payment's timeline reads for its waterfall (issue #18), newest files first:
   * ~1 s of reading; older traces are for scripts/trace.ts, which reads everything.
   */
  traceReadBytesMax: 64 * 1024 * 1024,
  /** Reconciliation runs per page of the list (keyset-paged, newest first); discrepancy items shown per class. */
  reconciliationRunsPageSize: 60,
  reconciliationItemsPerClassMax: 100,
  /** Discrepancy rows of a CSV download. */
  reconciliationCsvRowsMax: 1_000_000,
  /** Dead letters read for the list (and replay); the DLQ read's deadline. */
  deadLettersMax: 1_000,
  deadLetterReadTimeoutMs: 20_000,
  deadLetterPublishTimeoutMs: 30_000,
  /** Postgres pool and per-statement deadline (a search on a million payments is well under it). */
  poolConnectionsMax: 4,
  statementTimeoutMs: 10_000,
  /** Calls to the nodes (internal API), the PSP, Prometheus and the reconciler. */
  upstreamConnectTimeoutMs: 2_000,
  upstreamHeadersTimeoutMs: 10_000,
  upstreamBodyTimeoutMs: 10_000,
  upstreamConnectionsMax: 4,
  prometheusQueryTimeoutMs: 5_000,
  /** A rerun of a day reconciles a whole settlement report: minutes on a million payments. */
  reconcilerRerunTimeoutMs: 300_000,
  /** Operator-written reasons (audited). */
  reasonLengthMax: 500,
  requestDeadlineMs: 330_000,
  shutdownDrainMs: 5_000,
} as const
