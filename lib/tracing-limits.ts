// Tracing's limits (issue #18), one place: the batch span processor's queue and batches, and the
// file exporter's size cap. Tracing is off by default (RINGPAY_TRACING=1 turns it on).

export const tracingLimits = {
  /**
   * Spans waiting for export per process; past it new spans are dropped (the SDK counts them),
   * never queued without bound. A payment makes ~10 spans in a process at most: 8192 / 10 = 800
   * payments between two exports.
   */
  spanQueueSpansMax: 8192,
  /** Spans per export, i.e. per line of the trace file. */
  exportBatchSpansMax: 512,
  /** Queued spans are exported at least this often (and at once when a batch is full). */
  exportIntervalMs: 1000,
  /** One export's write; the SDK gives up on it after this. */
  exportTimeoutMs: 5000,
  /**
   * A trace file is rotated before it would pass this: `<service>-<pid>.jsonl` becomes
   * `<service>-<pid>.1.jsonl` (replacing the previous one), so a process keeps at most 2 × 64 MiB.
   * At ~400 bytes per span and ~10 spans per payment: ~16 000 payments per file.
   */
  traceFileBytesMax: 64 * 1024 * 1024,
  /**
   * A persistent stack dir gets new files at every start (new pids): when the stack starts with
   * --tracing it deletes the oldest files of <dir>/traces until they total at most this.
   */
  tracesDirBytesMax: 1024 * 1024 * 1024,
  /** Attribute values are cut to this: a span never carries a large body. */
  attributeValueLengthMax: 256,
  /** Attributes per span. */
  attributesPerSpanMax: 32,
  /** What a process waits for its last spans to be written at shutdown. */
  shutdownFlushMsMax: 2000,
} as const

if (tracingLimits.exportBatchSpansMax > tracingLimits.spanQueueSpansMax) throw new Error('a trace export batch cannot exceed the span queue')
