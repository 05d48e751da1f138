// The sandbox PSP's LevelDB (its own data dir). Key spaces, values are UTF-8 JSON unless noted:
//   c/<charge id>                  Charge                 current state of a charge
//   k/<idempotency key>            IdempotencyRecord      which charge a key created, and with what
//   x/<idempotency key>            [charge id, ...]       every charge ever created for the key,
//                                                         appended inside the commit (admin check)
//   n/<reference>                  [charge id, ...]       every charge made with the reference (the
//                                                         lookup that outlives key retention, #16)
//   s/<YYYY-MM-DD>/<charge id>     SettlementEntry        settlement index: the row of a succeeded charge
//   s/<YYYY-MM-DD>/<refund id>     RefundSettlementEntry  ... and of a succeeded refund (settlement.ts)
//   a/<due ms, 15 digits>/<id>     ''                     async charges waiting for their final status
//   o/<seq, 16 digits>             OutboxEntry            webhook deliveries not yet done (metadata
//                                                         line + body, webhook-events.ts); their due
//                                                         queue is in memory (outbox.ts)
//   f/<idempotency key>            ''                     pm_card_5xx_once already failed this key
//   d/<YYYY-MM-DD>                 Discrepancies          settlement report switches for a date
//   g/<reference prefix>           {date, count, seed}    a bulk generation (generate.ts)
//   r/<refund id>                  Refund                 current state of a refund
//   q/<idempotency key>            IdempotencyRecord      which refund a key created (refund_id), and with what
//   y/<idempotency key>            [refund id, ...]       every refund ever created for the key (admin check)
//   e/<charge id>                  [refund id, ...]       the refunds of a charge (what is left to refund)
//                                                         (a/<due>/<refund id> schedules async refunds too)
//   m/state                        StoreState             durable counters, next outbox sequence
//
// All writes go through one group committer: a single fsynced batch in flight at a time, with
// everything queued meanwhile in the next one. That makes `m/state` (written in every batch) exact,
// and the x/ index check race-free, at one fsync per batch instead of one per charge.
//
// A write may say by when it must be on disk (`notAfterMs`; default: now). A batch starts
// `writeBatchLeadMs` before the earliest such time among the queued writes, and takes every queued
// write: a charge written during its simulated latency (charge-service.ts) and webhook delivery
// outcomes (due `deferredWriteFlushMs` later: losing one in a crash only resends an event) ride
// together. LevelDB's log is sequential, so a fsynced batch makes every earlier write durable too:
// the store on disk is always a prefix of the writes, never a mix.
//
// w/<due>/<seq> keys (the on-disk due index of earlier versions) are removed at open.

import assert from 'node:assert/strict'
import { ClassicLevel } from 'classic-level'
import type { Charge } from './charge.ts'
import type { Refund } from './refund.ts'
import { PspError } from './errors.ts'
import type { PspLimits } from './limits.ts'

export interface DurableCounters {
  chargesTotal: number
  succeeded: number
  failed: number
  pending: number
  requiresAction: number
  /** Authorizations not yet captured nor voided (manual capture). */
  requiresCapture: number
  canceled: number
  /** Idempotency keys with more than one charge: must stay 0. */
  keysWithMultipleCharges: number
  webhooksEnqueued: number
  webhooksDelivered: number
  webhooksFailed: number
  webhooksDropped: number
  /** Entries in the outbox (not yet delivered nor given up). */
  webhooksPending: number
  refundsTotal: number
  refundsSucceeded: number
  refundsFailed: number
  refundsPending: number
  /** Idempotency keys with more than one refund: must stay 0. */
  keysWithMultipleRefunds: number
}

export type CounterDeltas = Partial<Record<keyof DurableCounters, number>>

interface StoreState {
  counters: DurableCounters
  outboxSeqNext: number
}

export interface IdempotencyRecord {
  charge_id: string
  fingerprint: string
}

export type Op = { type: 'put', key: string, value: string } | { type: 'del', key: string }

export interface WriteRequest {
  ops: Op[]
  /** Charges to append to the x/ index of their idempotency key. */
  indexCharges?: Array<{ idempotencyKey: string, chargeId: string, reference: string }>
  counters?: CounterDeltas
}

const emptyCounters: DurableCounters = {
  chargesTotal: 0,
  succeeded: 0,
  failed: 0,
  pending: 0,
  requiresAction: 0,
  requiresCapture: 0,
  canceled: 0,
  keysWithMultipleCharges: 0,
  webhooksEnqueued: 0,
  webhooksDelivered: 0,
  webhooksFailed: 0,
  webhooksDropped: 0,
  webhooksPending: 0,
  refundsTotal: 0,
  refundsSucceeded: 0,
  refundsFailed: 0,
  refundsPending: 0,
  keysWithMultipleRefunds: 0,
}

const stateKey = 'm/state'
const dueDigits = 15
const seqDigits = 16
/** Sorts after every character used in our keys; closes a prefix range. */
export const rangeEnd = '\uffff'

export const keys = {
  charge: (id: string): string => `c/${id}`,
  idempotency: (key: string): string => `k/${key}`,
  chargeIndex: (key: string): string => `x/${key}`,
  chargesByReference: (reference: string): string => `n/${reference}`,
  settlementPrefix: (date: string): string => `s/${date}/`,
  settlement: (date: string, chargeId: string): string => `s/${date}/${chargeId}`,
  asyncDue: (dueMs: number, chargeId: string): string => `a/${String(dueMs).padStart(dueDigits, '0')}/${chargeId}`,
  asyncPrefix: 'a/',
  outbox: (seq: number): string => `o/${String(seq).padStart(seqDigits, '0')}`,
  outboxPrefix: 'o/',
  /** The sequence of an o/ key. */
  outboxSeq: (key: string): number => Number(key.slice(2)),
  /** The on-disk due index of earlier versions; removed at open. */
  legacyOutboxDuePrefix: 'w/',
  asyncDueUntil: (nowMs: number): string => `a/${String(nowMs).padStart(dueDigits, '0')}/${rangeEnd}`,
  fault5xxOnce: (key: string): string => `f/${key}`,
  refund: (id: string): string => `r/${id}`,
  refundIdempotency: (key: string): string => `q/${key}`,
  refundIndex: (key: string): string => `y/${key}`,
  chargeRefunds: (chargeId: string): string => `e/${chargeId}`,
  /** 5xx-once markers of refund keys, apart from the charge keys' ones. */
  refundFault5xxOnce: (key: string): string => `f/refund/${key}`,
  discrepancies: (date: string): string => `d/${date}`,
  generation: (referencePrefix: string): string => `g/${referencePrefix}`,
}

/** Splits `a/<due>/<id>`. */
export function parseDueKey (key: string): { dueMs: number, rest: string } {
  const dueMs = Number(key.slice(2, 2 + dueDigits))
  return { dueMs, rest: key.slice(3 + dueDigits) }
}

interface Pending {
  request: WriteRequest
  notAfterMs: number
  resolve: () => void
  reject: (error: unknown) => void
}

export class PspStore {
  readonly db: ClassicLevel<string, string>
  readonly #limits: PspLimits
  #state: StoreState = { counters: { ...emptyCounters }, outboxSeqNext: 1 }
  #queue: Pending[] = []
  /** The earliest `notAfterMs` in #queue (Infinity when empty). */
  #earliestNotAfterMs = Infinity
  /** Closing: everything queued is written now. */
  #closing = false
  #timer: NodeJS.Timeout | undefined
  #timerAtMs = Infinity
  /** The running flush loop, if any. Cleared synchronously when the loop finds nothing to write. */
  #flushing: Promise<void> | undefined
  /** Told after every fsynced batch: how many write requests it held and how long the write took. */
  onBatchWritten: ((writes: number, durationMs: number) => void) | undefined

  constructor (location: string, limits: PspLimits) {
    this.db = new ClassicLevel<string, string>(location, {
      keyEncoding: 'utf8',
      valueEncoding: 'utf8',
      createIfMissing: true,
      errorIfExists: false,
      // Bulk generation writes millions of small entries: a larger memtable and larger files mean
      // fewer flushes and L0 compactions stalling the writer (4 MB / 2 MB defaults halve throughput).
      writeBufferSize: 32 * 1024 * 1024,
      maxFileSize: 16 * 1024 * 1024,
    })
    this.#limits = limits
  }

  async open (): Promise<void> {
    await this.db.open()
    await this.db.clear({ gte: keys.legacyOutboxDuePrefix, lt: keys.legacyOutboxDuePrefix + rangeEnd })
    const raw = this.db.getSync(stateKey)
    if (raw !== undefined) {
      const state = JSON.parse(raw) as StoreState
      this.#state = { counters: { ...emptyCounters, ...state.counters }, outboxSeqNext: state.outboxSeqNext }
    }
  }

  get counters (): Readonly<DurableCounters> {
    return this.#state.counters
  }

  /** Write requests waiting for, or in, the batch being written. */
  get queueDepth (): number {
    return this.#queue.length
  }

  /** A fresh outbox sequence. Persisted with the next batch, so it is never reused after a restart. */
  nextOutboxSeq (): number {
    return this.#state.outboxSeqNext++
  }

  getCharge (id: string): Charge | undefined {
    const raw = this.db.getSync(keys.charge(id))
    return raw === undefined ? undefined : JSON.parse(raw) as Charge
  }

  getRefund (id: string): Refund | undefined {
    const raw = this.db.getSync(keys.refund(id))
    return raw === undefined ? undefined : JSON.parse(raw) as Refund
  }

  /** Ids listed under a key (the y/ and e/ indexes). */
  idList (key: string): string[] {
    const raw = this.db.getSync(key)
    return raw === undefined ? [] : JSON.parse(raw) as string[]
  }

  getIdempotency (key: string): IdempotencyRecord | undefined {
    const raw = this.db.getSync(keys.idempotency(key))
    return raw === undefined ? undefined : JSON.parse(raw) as IdempotencyRecord
  }

  /** Every charge ever made with the reference (n/ index), oldest first. */
  chargesForReference (reference: string): Charge[] {
    return this.idList(keys.chargesByReference(reference)).map((id) => this.getCharge(id)).filter((c): c is Charge => c !== undefined)
  }

  /** Every charge ever created for the key, from the independent x/ index. */
  chargesForKey (key: string): Charge[] {
    const raw = this.db.getSync(keys.chargeIndex(key))
    if (raw === undefined) return []
    return (JSON.parse(raw) as string[]).map((id) => this.getCharge(id)).filter((c): c is Charge => c !== undefined)
  }

  has (key: string): boolean {
    return this.db.getSync(key) !== undefined
  }

  get (key: string): string | undefined {
    return this.db.getSync(key)
  }

  /**
   * Queues a write for a fsynced batch; resolves once it is on disk. A write is never split across
   * batches, so each request is atomic. `notAfterMs`: when it must be on disk at the latest (the
   * batch is started `writeBatchLeadMs` before; a busy disk can make it later). Default: now.
   */
  write (request: WriteRequest, options: { notAfterMs?: number } = {}): Promise<void> {
    if (this.#queue.length >= this.#limits.writeQueueMax) {
      return Promise.reject(new PspError('service_unavailable', { message: 'write queue full', retryAfterS: 1 }))
    }
    const notAfterMs = options.notAfterMs ?? -Infinity
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ request, notAfterMs, resolve, reject })
      this.#earliestNotAfterMs = Math.min(this.#earliestNotAfterMs, notAfterMs)
      this.#kick()
    })
  }

  /** When the next batch should start (now or earlier: at once). */
  #batchStartMs (): number {
    return this.#closing ? -Infinity : this.#earliestNotAfterMs - this.#limits.writeBatchLeadMs
  }

  /** Starts the flush loop if a batch is due, else sleeps until one is. */
  #kick (): void {
    if (this.#flushing !== undefined || this.#queue.length === 0) return
    const startMs = this.#batchStartMs()
    const nowMs = Date.now()
    if (startMs <= nowMs) {
      clearTimeout(this.#timer)
      this.#timer = undefined
      this.#timerAtMs = Infinity
      this.#flushing = this.#flush()
      return
    }
    if (this.#timer !== undefined && this.#timerAtMs <= startMs) return
    clearTimeout(this.#timer)
    this.#timerAtMs = startMs
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#timerAtMs = Infinity
      this.#kick()
    }, startMs - nowMs)
    this.#timer.unref()
  }

  async #flush (): Promise<void> {
    // Any write queued while a batch is on disk joins the next turn of this loop if it is due by
    // then; the loop ends (and clears #flushing) in the same tick in which it finds nothing due, and
    // #kick arms the timer for what is left, so no write is stranded.
    for (;;) {
      if (this.#queue.length === 0 || this.#batchStartMs() > Date.now()) {
        this.#flushing = undefined
        this.#kick()
        return
      }
      const taken: Pending[] = []
      let opCount = 0
      while (this.#queue.length > 0) {
        const next = this.#queue[0]!
        const size = next.request.ops.length + (next.request.indexCharges?.length ?? 0)
        if (taken.length > 0 && opCount + size > this.#limits.writeBatchOpsMax) break
        taken.push(this.#queue.shift()!)
        opCount += size
      }
      this.#earliestNotAfterMs = Infinity
      for (const pending of this.#queue) this.#earliestNotAfterMs = Math.min(this.#earliestNotAfterMs, pending.notAfterMs)
      try {
        const { ops, state } = this.#compose(taken)
        const startedAt = performance.now()
        await this.db.batch(ops, { sync: true })
        this.onBatchWritten?.(taken.length, performance.now() - startedAt)
        // Sequences handed out while the batch was on disk stay handed out.
        this.#state = { counters: state.counters, outboxSeqNext: Math.max(state.outboxSeqNext, this.#state.outboxSeqNext) }
      } catch (error) {
        for (const pending of taken) pending.reject(error)
        continue
      }
      for (const pending of taken) pending.resolve()
    }
  }

  #compose (taken: readonly Pending[]): { ops: Op[], state: StoreState } {
    const counters = { ...this.#state.counters }
    const ops: Op[] = []
    // Index lists touched in this batch, so two charges for one key in one batch are both seen.
    const indexOverlay = new Map<string, string[]>()
    const referenceOverlay = new Map<string, string[]>()
    for (const { request } of taken) {
      for (const op of request.ops) ops.push(op)
      for (const { idempotencyKey, chargeId, reference } of request.indexCharges ?? []) {
        let byReference = referenceOverlay.get(reference)
        if (byReference === undefined) {
          byReference = this.idList(keys.chargesByReference(reference))
          referenceOverlay.set(reference, byReference)
        }
        if (!byReference.includes(chargeId)) byReference.push(chargeId)
        let ids = indexOverlay.get(idempotencyKey)
        if (ids === undefined) {
          const raw = this.db.getSync(keys.chargeIndex(idempotencyKey))
          ids = raw === undefined ? [] : JSON.parse(raw) as string[]
          indexOverlay.set(idempotencyKey, ids)
        }
        if (ids.includes(chargeId)) continue
        // The key turns "multiple" on its second charge; a third does not count it again.
        if (ids.length === 1) counters.keysWithMultipleCharges++
        ids.push(chargeId)
      }
      for (const [name, delta] of Object.entries(request.counters ?? {}) as Array<[keyof DurableCounters, number]>) {
        counters[name] += delta
      }
    }
    for (const [idempotencyKey, ids] of indexOverlay) {
      ops.push({ type: 'put', key: keys.chargeIndex(idempotencyKey), value: JSON.stringify(ids) })
    }
    for (const [reference, ids] of referenceOverlay) {
      ops.push({ type: 'put', key: keys.chargesByReference(reference), value: JSON.stringify(ids) })
    }
    const state: StoreState = { counters, outboxSeqNext: this.#state.outboxSeqNext }
    ops.push({ type: 'put', key: stateKey, value: JSON.stringify(state) })
    return { ops, state }
  }

  /** Waits for every queued write (deferred ones too), then closes the database. */
  async close (): Promise<void> {
    this.#closing = true
    this.#kick()
    while (this.#flushing !== undefined) await this.#flushing
    clearTimeout(this.#timer)
    assert.equal(this.#queue.length, 0)
    await this.db.close()
  }
}
