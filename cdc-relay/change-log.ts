// The relay's view of the node's LevelDB: read the change log from the cursor, and advance the
// cursor. Keys are the ones payment-svc/store.ts writes: `c/<16 hex sequence>` in sequence order.

import { eventMacHeaderBytesMax } from '../lib/event-signing.ts'
import assert from 'node:assert/strict'
import type { ClassicLevel } from 'classic-level'
import { changeLogKey } from '../payment-svc/store.ts'
import { decodeRelayCursor, encodeRelayCursor, relayCursorKey, type RelayCursor } from './cursor.ts'
import { readChangeEventHeader, type ChangeEventHeader } from './event-header.ts'

const changeLogPrefix = 'c/'
/** '0' sorts right after '/': every `c/...` key is below it. */
const changeLogEnd = 'c0'
const sequenceHexDigits = 16
/** Kafka's per-record overhead (length, attributes, deltas, header counts), rounded up. */
const recordOverheadBytes = 32
/** Entries fetched from the LevelDB iterator per round trip to the thread pool. */
const readChunkEntriesMax = 128

export interface ChangeLogEntry {
  sequence: number
  /** The stored ChangeEvent bytes; published unchanged. */
  value: Uint8Array
  header: ChangeEventHeader
  /** Its Kafka headers (eventHeaders), built once. */
  headers: Record<string, string>
  /** What this entry adds to a produce request: value, key, headers and record overhead. */
  messageBytes: number
}

export interface ChangeLogCount {
  entries: number
  firstSequence: number | undefined
  /** The scan stopped at its limit: there are at least `entries`. */
  truncated: boolean
}

/** What the relay needs from the store; LevelChangeLog is the real one. */
export interface ChangeLog {
  loadCursor: () => RelayCursor | undefined
  /**
   * Entries from `fromSequence` on, in order: at most `eventsMax`, and no more than `bytesMax` of
   * message bytes, except that the first entry is always returned whatever its size.
   */
  read: (fromSequence: number, eventsMax: number, bytesMax: number) => Promise<ChangeLogEntry[]>
  /**
   * Stores cursor = toSequence, then deletes the entries in [fromSequence, toSequence). A crash
   * between the two leaves published entries below the cursor (never a cursor behind a hole):
   * removePublished clears them at the next start.
   */
  advance: (fromSequence: number, toSequence: number, nowMs: number) => Promise<void>
  /** Deletes every entry below `sequence` (published ones a crash left behind). */
  removePublished: (sequence: number) => Promise<void>
  /** Counts the entries actually present (at most `scanEntriesMax`). */
  count: (scanEntriesMax: number) => Promise<ChangeLogCount>
}

export function parseChangeLogKey (key: string): number {
  assert.ok(key.length === changeLogPrefix.length + sequenceHexDigits && key.startsWith(changeLogPrefix),
    `malformed change-log key ${JSON.stringify(key)}`)
  const sequence = Number.parseInt(key.slice(changeLogPrefix.length), 16)
  assert.ok(Number.isSafeInteger(sequence) && sequence >= 1, `bad change-log key ${key}`)
  return sequence
}

/** The Kafka headers every published change event carries. */
export function eventHeaders (header: ChangeEventHeader): Record<string, string> {
  return {
    'event-id': header.eventId,
    'event-type': header.type,
    'schema-version': String(header.schemaVersion),
    'node-id': header.nodeId,
  }
}

function messageBytesOf (value: Uint8Array, header: ChangeEventHeader, headers: Record<string, string>): number {
  // The event-mac header is added at publish time (relay.ts); its bound is counted here.
  let bytes = value.byteLength + Buffer.byteLength(header.checkoutId) + recordOverheadBytes + eventMacHeaderBytesMax
  for (const name in headers) bytes += name.length + Buffer.byteLength(headers[name]!)
  return bytes
}

/** A change-log value as the relay publishes it; `sequence` is where it was found (checked). */
export function changeLogEntry (sequence: number, value: Uint8Array): ChangeLogEntry {
  const header = readChangeEventHeader(value)
  // `if` first: the message template would otherwise be built for every entry.
  if (header.sequence !== sequence) assert.fail(`change-log entry at ${sequence} holds sequence ${header.sequence}`)
  const headers = eventHeaders(header)
  return { sequence, value, header, headers, messageBytes: messageBytesOf(value, header, headers) }
}

export class LevelChangeLog implements ChangeLog {
  readonly #db: ClassicLevel<string, Uint8Array>

  constructor (db: ClassicLevel<string, Uint8Array>) {
    this.#db = db
  }

  loadCursor (): RelayCursor | undefined {
    const bytes = this.#db.getSync(relayCursorKey)
    return bytes === undefined ? undefined : decodeRelayCursor(bytes)
  }

  async read (fromSequence: number, eventsMax: number, bytesMax: number): Promise<ChangeLogEntry[]> {
    assert.ok(eventsMax >= 1 && bytesMax >= 1)
    const entries: ChangeLogEntry[] = []
    let bytes = 0
    const iterator = this.#db.iterator({ gte: changeLogKey(fromSequence), lt: changeLogEnd, limit: eventsMax })
    try {
      for (;;) {
        const chunk = await iterator.nextv(Math.min(readChunkEntriesMax, eventsMax - entries.length))
        if (chunk.length === 0) return entries
        for (const [key, value] of chunk) {
          const entry = changeLogEntry(parseChangeLogKey(key), value)
          if (entries.length > 0 && bytes + entry.messageBytes > bytesMax) return entries
          entries.push(entry)
          bytes += entry.messageBytes
          if (entries.length >= eventsMax) return entries
        }
      }
    } finally {
      await iterator.close()
    }
  }

  async advance (fromSequence: number, toSequence: number, nowMs: number): Promise<void> {
    assert.ok(toSequence > fromSequence, 'the cursor only moves forward')
    // Not fsynced: losing these writes in a power cut only moves the cursor back, with the
    // entries still there (LevelDB's log replays a prefix of the writes, and the cursor is written
    // before the deletes), so they are re-sent, never skipped. Every fsynced payment batch after
    // them makes them durable anyway; an fsync here would double the disk flushes on the node's
    // accept path.
    await this.#db.put(relayCursorKey, encodeRelayCursor({ nextSequence: toSequence, updatedAtMs: nowMs }), { sync: false })
    // One range delete, iterated in native code: a batch of one `del` per entry took ~7 µs of CPU
    // per event (building and converting the operations, worker and thread pool), this ~4.5 µs.
    await this.#db.clear({ gte: changeLogKey(fromSequence), lt: changeLogKey(toSequence) })
  }

  async removePublished (sequence: number): Promise<void> {
    await this.#db.clear({ gte: changeLogPrefix, lt: changeLogKey(sequence) })
  }

  async count (scanEntriesMax: number): Promise<ChangeLogCount> {
    const iterator = this.#db.keys({ gte: changeLogPrefix, lt: changeLogEnd, limit: scanEntriesMax })
    let entries = 0
    let firstSequence: number | undefined
    try {
      for (;;) {
        const chunk = await iterator.nextv(Math.min(1024, scanEntriesMax))
        if (chunk.length === 0) break
        if (firstSequence === undefined && chunk[0] !== undefined) firstSequence = parseChangeLogKey(chunk[0])
        entries += chunk.length
      }
    } finally {
      await iterator.close()
    }
    return { entries, firstSequence, truncated: entries >= scanEntriesMax }
  }
}
