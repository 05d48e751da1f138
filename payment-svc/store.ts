// The node's LevelDB: one database per node, three key spaces. A payment is keyed by its merchant
// and checkout id (issue #17 part 5: checkout ids are per merchant; lib/payment-id.ts).
//   p/<merchant_id>/<checkout_id>  Payment   the current state of a payment
//   c/<16 hex sequence>  ChangeEvent         change log, in sequence order; the CDC relay tails it
//   m/node               NodeMeta            node id and the next change-log sequence
//   m/relay-cursor       RelayCursor         the CDC relay's position (written by cdc-relay/)
//   m/layout             'merchant-scoped'   written with m/node: the keys are per merchant (a store
//                                            without it is from before, and is refused: StoreLayoutError)
//   w/<provider>/<event> (empty)             PSP webhook event ids already taken (dedup)
//   o/<merchant_id>/<checkout_id>  created_at ms       payments not yet terminal (the node's own watchdog view); not
//                                            an authorization awaiting its capture; a capture asked for: since then
// A payment change and its change-log entry are always written in the same atomic batch (a
// processor's claim, written unpublished, has none).

import assert from 'node:assert/strict'
import { ClassicLevel } from 'classic-level'
import {
  decodeNodeMeta, decodePayment, encodeChangeEvent, encodeNodeMeta, encodePayment, terminalStatuses,
  type ChangeEvent, type NodeMeta, type Payment,
} from '../lib/payment-codec.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import { paymentKey } from '../lib/payment-id.ts'
import { IdFilter } from './id-filter.ts'
import { defaultLimits } from './limits.ts'

const paymentPrefix = 'p/'
/** The first key after every `p/…` key ('0' follows '/'). */
const paymentPrefixEnd = 'p0'
const changeLogPrefix = 'c/'
const nodeMetaKey = 'm/node'
const layoutKey = 'm/layout'
const layoutValue = new TextEncoder().encode('merchant-scoped')
const webhookPrefix = 'w/'
const openPrefix = 'o/'

/**
 * A data dir written before checkout ids were scoped per merchant (its payments keyed by checkout
 * id alone): refused rather than misread. Its payments cannot be found under the new keys.
 */
export class StoreLayoutError extends Error {
  readonly code = 'store_layout_old'
}

/** A manual payment authorized and waiting for the merchant: no capture asked for yet. */
function awaitsCapture (payment: Payment): boolean {
  return payment.status === 'requires_capture' && (payment.amountToCapture ?? 0) === 0
}
const emptyValue = new Uint8Array(0)
const sequenceHexDigits = 16

export function changeLogKey (sequence: number): string {
  return changeLogPrefix + sequence.toString(16).padStart(sequenceHexDigits, '0')
}

/** The change-log values one batch wrote, from `firstSequence` on. */
export interface CommittedChangeEvents {
  firstSequence: number
  events: Uint8Array[]
}

export interface PaymentWrite {
  payment: Payment
  /** Absent: the payment is written without a change-log entry (a claim that is not published). */
  event?: ChangeEvent
}

function webhookKey (provider: string, pspEventId: string): string {
  return `${webhookPrefix}${provider}/${pspEventId}`
}

export interface PaymentStoreOptions {
  /**
   * Seals payment methods, customer refs, metadata and webhook bodies before they reach the disk
   * and opens them on read (lib/field-crypto.ts; issue #17 part 7). Required: a store never
   * writes them in clear.
   */
  sealer: FieldSealer
  /** Size of the known-id filter (a power of two); see limits.ts idFilterBytes. */
  idFilterBytes?: number
  /** LevelDB's memtable size; see limits.ts leveldbWriteBufferBytes. */
  writeBufferBytes?: number
}

/** What the known-id filter's rebuild at open found. */
export interface IdFilterRebuild {
  /** True once every stored id is in the filter; until then every read goes to LevelDB. */
  ready: boolean
  ids: number
  error?: unknown
}

export class PaymentStore {
  readonly db: ClassicLevel<string, Uint8Array>
  #meta: NodeMeta | undefined
  /**
   * Every payment key (`<merchant>/<checkout>`) with a `p/` key: rebuilt from the keys at open (in the background), and
   * every id this store writes is added before its batch is written. Trusted only once rebuilt.
   */
  readonly #knownIds: IdFilter
  #knownIdsReady = false
  #rebuild: Promise<IdFilterRebuild> | undefined
  #closing = false
  readonly #sealer: FieldSealer

  constructor (location: string, options: PaymentStoreOptions) {
    this.#sealer = options.sealer
    this.#knownIds = new IdFilter(options.idFilterBytes ?? defaultLimits.idFilterBytes)
    this.db = new ClassicLevel<string, Uint8Array>(location, {
      keyEncoding: 'utf8',
      valueEncoding: 'view',
      createIfMissing: true,
      errorIfExists: false,
      // A worker thread (the CDC relay) may share this handle within the process.
      multithreading: true,
      writeBufferSize: options.writeBufferBytes ?? defaultLimits.leveldbWriteBufferBytes,
    })
  }

  /** Opens the store and claims it for `nodeId`; a store of another node is refused. */
  async open (nodeId: string, nowMs: number): Promise<NodeMeta> {
    await this.db.open()
    const bytes = this.db.getSync(nodeMetaKey)
    if (bytes === undefined) {
      const meta: NodeMeta = { nodeId, nextSequence: 1, createdAtMs: nowMs }
      await this.db.batch([
        { type: 'put', key: nodeMetaKey, value: encodeNodeMeta(meta) },
        { type: 'put', key: layoutKey, value: layoutValue },
      ], { sync: true })
      this.#meta = meta
    } else {
      if (this.db.getSync(layoutKey) === undefined) {
        await this.db.close()
        throw new StoreLayoutError(`${this.db.location} holds payments keyed by checkout id alone (before checkout ids were scoped per merchant, ` +
          'issue #17 part 5): its payments cannot be read under the new keys. Delete the data dir (for a stack: its --dir, e.g. .stack/local).')
      }
      const meta = decodeNodeMeta(bytes)
      if (meta.nodeId !== nodeId) {
        throw new Error(`data dir belongs to node ${meta.nodeId}, not ${nodeId}`)
      }
      this.#meta = meta
    }
    // The iterator's snapshot is taken now, before any write of this process: every id is either
    // in the snapshot or written (and added) later.
    this.#rebuild = this.#rebuildKnownIds()
    return this.#meta
  }

  /** Resolves when the known-id filter's rebuild has finished (or failed: the filter stays unused). */
  knownIdsRebuilt (): Promise<IdFilterRebuild> {
    assert.ok(this.#rebuild !== undefined, 'store not open')
    return this.#rebuild
  }

  async #rebuildKnownIds (): Promise<IdFilterRebuild> {
    let ids = 0
    try {
      for await (const key of this.db.keys({ gt: paymentPrefix, lt: paymentPrefixEnd })) {
        if (this.#closing) return { ready: false, ids }
        this.#knownIds.add(key.slice(paymentPrefix.length))
        ids++
      }
    } catch (error) {
      return { ready: false, ids, error }
    }
    this.#knownIdsReady = true
    return { ready: true, ids }
  }

  get meta (): NodeMeta {
    assert.ok(this.#meta !== undefined, 'store not open')
    return this.#meta
  }

  /**
   * A synchronous point read: the accept path needs it for every request, and for the small,
   * hot working set it is cheaper than a round trip through the libuv thread pool.
   */
  getPayment (merchantId: string, checkoutId: string): Payment | undefined {
    return this.getPaymentByKey(paymentKey(merchantId, checkoutId))
  }

  /** getPayment by the payment's key (lib/payment-id.ts paymentKey), for a caller that already has it. */
  getPaymentByKey (key: string): Payment | undefined {
    // Most ids on the accept path are new: a definite "never written" answers without LevelDB.
    if (this.#knownIdsReady && !this.#knownIds.mightContain(key)) return undefined
    const bytes = this.db.getSync(paymentPrefix + key)
    return bytes === undefined ? undefined : decodePayment(bytes, this.#sealer)
  }

  hasWebhook (provider: string, pspEventId: string): boolean {
    return this.db.getSync(webhookKey(provider, pspEventId)) !== undefined
  }

  /**
   * Writes payments, their change-log entries and the advanced sequence in one fsynced batch.
   * Sequences must be the next ones in order, with no gap: the relay relies on it. Resolves,
   * once durable, with the change-log values written (in sequence order, from the batch's first
   * sequence): the relay takes them from memory instead of reading them back.
   */
  async writeBatch (writes: readonly PaymentWrite[]): Promise<CommittedChangeEvents> {
    const meta = this.meta
    // A chained batch: classic-level's array form looks up "type", "key" and "value" on every
    // operation object in native code, which cost ~13 % of the accept path's CPU.
    const batch = this.db.batch()
    let nextSequence = meta.nextSequence
    const events: Uint8Array[] = []
    for (const { payment, event } of writes) {
      // Encoded once: the change event embeds the same bytes as its `payment` field.
      const paymentBytes = encodePayment(payment, this.#sealer)
      const key = paymentKey(payment.merchantId, payment.checkoutId)
      // Before the batch is written, so no read after it can miss the id.
      this.#knownIds.add(key)
      batch.put(paymentPrefix + key, paymentBytes)
      if (event === undefined) {
        // Not terminal and not a create, so the open-payment index stays as it is.
        assert.ok(!terminalStatuses.has(payment.status), 'an unpublished write must not be terminal')
        continue
      }
      assert.equal(event.sequence, nextSequence, 'change-log sequence gap')
      assert.equal(event.checkoutId, payment.checkoutId)
      assert.equal(event.version, payment.version)
      const eventBytes = encodeChangeEvent(event, this.#sealer, paymentBytes)
      events.push(eventBytes)
      batch.put(changeLogKey(event.sequence), eventBytes)
      // The open-payment index moves in the same batch as the status it reflects. An authorization
      // awaiting the merchant's capture (manual capture: hours or days, by design) is not open work;
      // its capture, once asked for, is, from that moment.
      if (terminalStatuses.has(payment.status) || awaitsCapture(payment)) batch.del(openPrefix + key)
      else if (event.type === 'payment.created') batch.put(openPrefix + key, encodeMs(payment.createdAtMs))
      else if (event.type === 'payment.capture_requested') batch.put(openPrefix + key, encodeMs(payment.updatedAtMs))
      if (event.webhook !== undefined) {
        batch.put(webhookKey(event.webhook.provider, event.webhook.pspEventId), emptyValue)
      }
      nextSequence++
    }
    const nextMeta: NodeMeta = { ...meta, nextSequence }
    batch.put(nodeMetaKey, encodeNodeMeta(nextMeta))
    await batch.write({ sync: true })
    this.#meta = nextMeta
    return { firstSequence: meta.nextSequence, events }
  }

  /**
   * Counts payments not yet terminal and finds the oldest, reading at most `entriesMax` index
   * entries (an iterator in bounded chunks, off the event loop's hot path).
   */
  async scanOpen (nowMs: number, staleAfterMs: number, entriesMax: number): Promise<{ open: number, stale: number, oldestAgeMs: number, complete: boolean }> {
    let open = 0
    let stale = 0
    let oldestMs = nowMs
    for await (const value of this.db.values({ gte: openPrefix, lt: openPrefix + '\uffff', limit: entriesMax })) {
      const createdAtMs = decodeMs(value)
      open++
      if (nowMs - createdAtMs > staleAfterMs) stale++
      if (createdAtMs < oldestMs) oldestMs = createdAtMs
    }
    return { open, stale, oldestAgeMs: nowMs - oldestMs, complete: open < entriesMax }
  }

  async close (): Promise<void> {
    this.#closing = true
    await this.#rebuild
    await this.db.close()
  }
}

function encodeMs (ms: number): Uint8Array {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setFloat64(0, ms)
  return bytes
}

function decodeMs (bytes: Uint8Array): number {
  assert.equal(bytes.byteLength, 8, 'bad open-payment index value')
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0)
}
