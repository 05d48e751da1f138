// Every bound of the reconciler, in one place. Units go last.

export const reconcilerLimits = {
  /** PSP report download (undici phases). A million-row report streams in a few seconds. */
  pspConnectTimeoutMs: 5_000,
  pspHeadersTimeoutMs: 30_000,
  /** Longest silence between two body chunks; the whole body has no deadline (it streams). */
  pspBodyIdleTimeoutMs: 30_000,
  /** Connections to the PSP (one report at a time, plus a spare). */
  pspConnectionsMax: 2,
  /** One CSV record in characters (a line; a quoted cell may span lines). A valid report line is < 600 bytes. */
  csvRecordCharsMax: 64 * 1024,
  /** Rows handed to COPY per write (one string of about 100 bytes per row). */
  copyChunkRows: 2_000,
  /** Postgres. The big statements of a million-row day take seconds; nothing should take minutes. */
  statementTimeoutMs: 300_000,
  connectTimeoutMs: 5_000,
  /** Sorts and hashes of the classification stay in memory up to this (per operation). */
  workMemMb: 256,
  /** Temp tables (staging, classified rows) are held in local buffers up to this per session. */
  tempBuffersMb: 256,
  poolConnectionsMax: 2,
  poolIdleTimeoutMs: 30_000,
  /** Progress lines on stderr (CLI) at most this often. */
  progressIntervalMs: 2_000,
  /** Daemon: attempts of the daily run (PSP or Postgres down), and the wait between them. */
  dailyRunAttemptsMax: 6,
  dailyRunRetryDelayMs: 60_000,
  /** Longest single timer; longer waits re-arm (setTimeout's own limit is 2^31 - 1 ms). */
  timerDelayMsMax: 3_600_000,
  /** Days in one --month run. */
  monthDaysMax: 31,
  /** Follow-up reruns after one run (the two neighbour days at most). */
  followUpRunsMax: 2,
  /** Longest PSP name (`--psp`). */
  pspNameLengthMax: 32,
} as const
