// Cursor encoding, the event header reader and the LevelDB change-log access.

import { AssertionError } from 'node:assert'
import t from 'tap'
import { changeEventSchemaVersion, decodeChangeEvent } from '../../lib/payment-codec.ts'
import { changeLogKey } from '../../payment-svc/store.ts'
import { LevelChangeLog, eventHeaders, parseChangeLogKey } from '../change-log.ts'
import { decodeRelayCursor, encodeRelayCursor, relayCursorKey } from '../cursor.ts'
import { readChangeEventHeader } from '../event-header.ts'
import { openTestNode } from './fixtures.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'

t.test('cursor round trip; garbage is refused', async (t) => {
  const cursor = { nextSequence: 2 ** 40 + 7, updatedAtMs: 1_760_000_000_000 }
  t.same(decodeRelayCursor(encodeRelayCursor(cursor)), cursor)
  t.throws(() => encodeRelayCursor({ nextSequence: 0, updatedAtMs: 0 }), AssertionError)
  t.throws(() => decodeRelayCursor(new Uint8Array([0x08, 0x09])), AssertionError, 'unknown schema version')
})

t.test('change-log keys parse back to their sequence', async (t) => {
  for (const sequence of [1, 255, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) t.equal(parseChangeLogKey(changeLogKey(sequence)), sequence)
  t.throws(() => parseChangeLogKey('c/123'), AssertionError)
  t.throws(() => parseChangeLogKey('p/0000000000000001'), AssertionError)
})

t.test('the header reader agrees with the full decoder on real entries', async (t) => {
  const node = await openTestNode('n7')
  t.teardown(() => node.close())
  await node.createPayments(['h-1', 'h-2'])
  await node.service.transition('merchant_demo', 'h-1', { to: 'processing', expectedVersion: 1, actor: 'test', failureCode: '', failureMessage: '', pspReference: '' }, Date.now())
  for (let sequence = 1; sequence <= 3; sequence++) {
    const bytes = node.store.db.getSync(changeLogKey(sequence))!
    const full = decodeChangeEvent(bytes, testKeyRing)
    const header = readChangeEventHeader(bytes)
    t.same(header, {
      schemaVersion: changeEventSchemaVersion,
      eventId: full.eventId,
      nodeId: full.nodeId,
      sequence: full.sequence,
      type: full.type,
      checkoutId: full.checkoutId,
      version: full.version,
      occurredAtMs: full.occurredAtMs,
    })
  }
  t.equal(readChangeEventHeader(node.store.db.getSync(changeLogKey(3))!).type, 'payment.status_changed')
  t.same(eventHeaders(readChangeEventHeader(node.store.db.getSync(changeLogKey(1))!)),
    { 'event-id': 'n7:1', 'event-type': 'payment.created', 'schema-version': String(changeEventSchemaVersion), 'node-id': 'n7' })
})

t.test('read is bounded by count and bytes, starts at the sequence asked for; advance moves the cursor and deletes what it passed', async (t) => {
  const node = await openTestNode('n1')
  t.teardown(() => node.close())
  await node.createPayments(Array.from({ length: 300 }, (_, i) => `r-${i}`))
  const log = new LevelChangeLog(node.store.db)
  t.equal(log.loadCursor(), undefined)
  const all = await log.read(1, 1_000, 10 * 1024 * 1024)
  t.equal(all.length, 300, 'reads across several iterator chunks')
  t.same(all.map((e) => e.sequence), Array.from({ length: 300 }, (_, i) => i + 1))
  t.equal((await log.read(1, 7, 10 * 1024 * 1024)).length, 7)
  const size = all[0]!.messageBytes
  t.ok(size > all[0]!.value.byteLength, 'message bytes count key and headers too')
  t.equal((await log.read(1, 1_000, size * 5)).length, 5)
  t.same((await log.read(42, 3, 1e9)).map((e) => e.sequence), [42, 43, 44])

  const values = (await log.read(1, 3, 1e9)).map((e) => Uint8Array.from(e.value))
  const again = await log.read(1, 3, 1e9)
  await log.read(100, 200, 1e9)
  t.same(again.map((e) => Uint8Array.from(e.value)), values, 'values stay intact across later reads')

  await log.advance(1, 101, 123)
  t.same(log.loadCursor(), { nextSequence: 101, updatedAtMs: 123 })
  t.same(await log.count(10_000), { entries: 200, firstSequence: 101, truncated: false })
  t.same(await log.count(50), { entries: 50, firstSequence: 101, truncated: true })
  t.equal(node.store.db.getSync(changeLogKey(100)), undefined)
  t.ok(node.store.db.getSync(changeLogKey(101)))
  t.ok(node.store.getPayment('merchant_demo', 'r-0'), 'payment records stay')
  await t.rejects(log.advance(5, 5, 0), AssertionError)
  t.ok(node.store.db.getSync(relayCursorKey))
})

t.test('removePublished clears what a crash between the cursor write and the delete left below the cursor', async (t) => {
  const node = await openTestNode('n1')
  t.teardown(() => node.close())
  await node.createPayments(Array.from({ length: 10 }, (_, i) => `lp-${i}`))
  const log = new LevelChangeLog(node.store.db)
  // The crash: the cursor moved to 8, the delete never ran.
  await node.store.db.put(relayCursorKey, encodeRelayCursor({ nextSequence: 8, updatedAtMs: 1 }))
  t.equal((await log.count(100)).entries, 10)
  await log.removePublished(log.loadCursor()!.nextSequence)
  t.same(await log.count(100), { entries: 3, firstSequence: 8, truncated: false })
  t.ok(node.store.getPayment('merchant_demo', 'lp-0'), 'payment records stay')
})
