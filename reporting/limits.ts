// Every bound of the reporting service, in one place. Units go last.

export const reportingLimits = {
  /** Payments per page when the merchant asks for none, and the most a page may hold. */
  pageSizeDefault: 20,
  pageSizeMax: 100,
  /** A CSV export covers at most this many days of created_at (a month of payments). */
  exportRangeDaysMax: 31,
  /** Exports streaming at once; the next one is refused 429 until one finishes. */
  exportsInFlightMax: 2,
  /** List queries running at once across all merchants (each holds a pool connection). */
  listsInFlightMax: 32,
  /** Postgres: connections, and the bound on any one statement (a page is an index range scan). */
  poolConnectionsMax: 8,
  statementTimeoutMs: 5_000,
  /** A whole export, however big, past which its stream is cut. */
  exportDeadlineMs: 300_000,
  /** Query string bytes; anything longer is refused before parsing. */
  queryBytesMax: 2_048,
  /** How often an unusable API keys file is read again (fail closed meanwhile). */
  apiKeysRetryIntervalMs: 2_000,
  /** How often the keys file is looked at for a change (a key issued or revoked), as on the nodes. */
  apiKeysPollIntervalMs: 2_000,
  /** SIGTERM: requests in flight get this long to finish. */
  shutdownDrainMs: 5_000,
} as const
