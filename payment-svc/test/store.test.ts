import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ChangeEvent, Payment } from '../../lib/payment-codec.ts'
import { PaymentStore, type CommittedChangeEvents } from '../store.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'

function payment (id: string, status: Payment['status'], version: number, createdAtMs: number): Payment {
  return {
    checkoutId: id, merchantId: 'm', amount: 100, currency: 'EUR', paymentMethod: 'pm', description: '', customerRef: '',
    metadata: {}, status, version, createdAtMs, updatedAtMs: createdAtMs, requestHash: new Uint8Array(32), failureCode: '',
    failureMessage: '', pspReference: '', nodeId: 'n1', refunds: [],
  }
}

function write (store: PaymentStore, p: Payment, type: ChangeEvent['type']): Promise<CommittedChangeEvents> {
  const sequence = store.meta.nextSequence
  return store.writeBatch([{
    payment: p,
    event: { eventId: `n1:${sequence}`, nodeId: 'n1', sequence, type, checkoutId: p.checkoutId, version: p.version,
      occurredAtMs: p.updatedAtMs, payment: p, previousStatus: undefined, actor: 'test', webhook: undefined, refundId: '' },
  }])
}

t.test('payments, change log and the open-payment index move in one batch', async (t) => {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', 1_000)
  t.teardown(() => store.close())
  const nowMs = 1_000_000
  await write(store, payment('old', 'pending', 1, nowMs - 120_000), 'payment.created')
  await write(store, payment('new', 'pending', 1, nowMs - 1_000), 'payment.created')
  await write(store, payment('done', 'pending', 1, nowMs - 200_000), 'payment.created')
  await write(store, payment('done', 'succeeded', 2, nowMs - 200_000), 'payment.status_changed')
  t.same(await store.scanOpen(nowMs, 60_000, 100), { open: 2, stale: 1, oldestAgeMs: 120_000, complete: true })
  t.equal(store.meta.nextSequence, 5, 'one sequence per change, no gaps')
  t.equal(store.getPayment('m', 'done')?.status, 'succeeded')
  t.same(await store.scanOpen(nowMs, 60_000, 2), { open: 2, stale: 1, oldestAgeMs: 120_000, complete: false }, 'bounded scan says it stopped early')
})

t.test('a store of another node is refused', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
  const first = new PaymentStore(dir, { sealer: testKeyRing })
  await first.open('n1', 1)
  await first.close()
  const second = new PaymentStore(dir, { sealer: testKeyRing })
  await t.rejects(second.open('n2', 1), /belongs to node n1/)
  await second.close()
})

t.test('known-id filter: rebuilt at open, so ids written before a restart are found; new ids skip LevelDB', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
  const first = new PaymentStore(dir, { sealer: testKeyRing, idFilterBytes: 1024 })
  await first.open('n1', 1)
  t.same(await first.knownIdsRebuilt(), { ready: true, ids: 0 })
  for (let i = 0; i < 300; i++) await write(first, payment(`before_${i}`, 'pending', 1, 1_000), 'payment.created')
  t.equal(first.getPayment('m', 'before_7')?.checkoutId, 'before_7', 'written while the filter is ready')
  await first.close()

  const second = new PaymentStore(dir, { sealer: testKeyRing, idFilterBytes: 1024 })
  await second.open('n1', 2)
  // Written while the rebuild may still be running: found either way.
  await write(second, payment('during', 'pending', 1, 1_000), 'payment.created')
  const rebuild = await second.knownIdsRebuilt()
  t.ok(rebuild.ready)
  t.ok(rebuild.ids === 300 || rebuild.ids === 301, 'every stored id was read back into the filter')
  t.teardown(() => second.close())
  for (let i = 0; i < 300; i++) {
    if (second.getPayment('m', `before_${i}`)?.checkoutId !== `before_${i}`) t.fail(`before_${i} lost after reopen`)
  }
  t.equal(second.getPayment('m', 'during')?.checkoutId, 'during')
  t.equal(second.getPayment('m', 'never_written'), undefined)
})

t.test('closing during the rebuild stops it', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
  const first = new PaymentStore(dir, { sealer: testKeyRing })
  await first.open('n1', 1)
  for (let i = 0; i < 50; i++) await write(first, payment(`p_${i}`, 'pending', 1, 1_000), 'payment.created')
  await first.close()
  const second = new PaymentStore(dir, { sealer: testKeyRing })
  await second.open('n1', 2)
  await second.close()
  const rebuild = await second.knownIdsRebuilt()
  t.ok(rebuild.ids <= 50)
})

t.test('the memtable is as large as configured: writes below it stay out of level-0 tables', async (t) => {
  const valueBytes = 64 * 1024
  const writtenBytes = 8 * 1024 * 1024
  /** Whether writing `writtenBytes` into a fresh store with this memtable flushed a table file. */
  const flushesTables = async (writeBufferBytes: number): Promise<boolean> => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
    const store = new PaymentStore(dir, { sealer: testKeyRing, writeBufferBytes })
    await store.open('n1', 1_000)
    t.teardown(() => store.close())
    const chunk = new Uint8Array(valueBytes).fill(7)
    for (let i = 0; i < writtenBytes / valueBytes; i++) await store.db.put(`x/${i}`, chunk.map((b) => b ^ (i & 0xff)))
    return readdirSync(dir).some((name) => name.endsWith('.ldb'))
  }
  // LevelDB's own default (4 MiB) would flush 8 MiB of writes into at least one table file.
  t.equal(await flushesTables(16 * 1024 * 1024), false, '8 MiB written, no table flushed with a 16 MiB memtable')
  t.equal(await flushesTables(1024 * 1024), true, 'the same writes with a 1 MiB memtable flush tables')
})

t.test('no payment method, customer ref, metadata or webhook body in clear in the LevelDB files (#17 part 7)', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
  const store = new PaymentStore(dir, { sealer: testKeyRing })
  await store.open('n1', 1_000)
  const p: Payment = {
    ...payment('co_sealed', 'pending', 1, 5_000),
    paymentMethod: 'pm_card_visa_atrest', customerRef: 'cust_atrest_77', metadata: { order_atrest: 'ord-atrest-5' },
  }
  await write(store, p, 'payment.created')
  const sequence = store.meta.nextSequence
  const moved = { ...p, status: 'succeeded' as const, version: 2, pspReference: 'ch_1' }
  await store.writeBatch([{
    payment: moved,
    event: {
      eventId: `n1:${sequence}`, nodeId: 'n1', sequence, type: 'payment.status_changed', checkoutId: p.checkoutId, version: 2,
      occurredAtMs: 6_000, payment: moved, previousStatus: 'pending', actor: 'webhook:sandbox', refundId: '',
      webhook: { provider: 'sandbox', pspEventId: 'evt_atrest', type: 'charge.succeeded', payloadJson: '{"atrest_body":"whb-atrest-3"}', applied: true, note: '', receivedAtMs: 6_000 },
    },
  }])
  t.same(store.getPayment('m', 'co_sealed'), moved, 'read back in clear through the store')
  await store.close()
  // The write-ahead log and any table file hold each value as written.
  const bytes = Buffer.concat(readdirSync(dir).map((name) => readFileSync(join(dir, name))))
  t.ok(bytes.includes('co_sealed'), 'the checkout id is there (a key, not sealed): the files were read')
  for (const secret of ['pm_card_visa_atrest', 'cust_atrest_77', 'order_atrest', 'ord-atrest-5', 'whb-atrest-3', 'atrest_body']) {
    t.notOk(bytes.includes(secret), `${secret} not in the files`)
  }
  // Another key ring cannot read the store: a typed error, never the clear values or garbage.
  const { KeyRing, newFieldKey } = await import('../../lib/field-crypto.ts')
  const stranger = new PaymentStore(dir, { sealer: new KeyRing({ active: 'x', keys: [newFieldKey('x')] }) })
  await stranger.open('n1', 1_000)
  t.teardown(() => stranger.close())
  t.throws(() => stranger.getPayment('m', 'co_sealed'), { name: 'FieldCryptoError', code: 'field_key_unknown' })
})
