import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ChangeEvent, Payment } from '../../lib/payment-codec.ts'
import { PaymentStore } from '../store.ts'

function payment (id: string, status: Payment['status'], version: number, createdAtMs: number): Payment {
  return {
    checkoutId: id, merchantId: 'm', amount: 100, currency: 'EUR', paymentMethod: 'pm', description: '', customerRef: '',
    metadata: {}, status, version, createdAtMs, updatedAtMs: createdAtMs, requestHash: new Uint8Array(32), failureCode: '',
    failureMessage: '', pspReference: '', nodeId: 'n1',
  }
}

function write (store: PaymentStore, p: Payment, type: ChangeEvent['type']): Promise<void> {
  const sequence = store.meta.nextSequence
  return store.writeBatch([{
    payment: p,
    event: { eventId: `n1:${sequence}`, nodeId: 'n1', sequence, type, checkoutId: p.checkoutId, version: p.version,
      occurredAtMs: p.updatedAtMs, payment: p, previousStatus: undefined, actor: 'test', webhook: undefined },
  }])
}

t.test('payments, change log and the open-payment index move in one batch', async (t) => {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db'))
  await store.open('n1', 1_000)
  t.teardown(() => store.close())
  const nowMs = 1_000_000
  await write(store, payment('old', 'pending', 1, nowMs - 120_000), 'payment.created')
  await write(store, payment('new', 'pending', 1, nowMs - 1_000), 'payment.created')
  await write(store, payment('done', 'pending', 1, nowMs - 200_000), 'payment.created')
  await write(store, payment('done', 'succeeded', 2, nowMs - 200_000), 'payment.status_changed')
  t.same(await store.scanOpen(nowMs, 60_000, 100), { open: 2, stale: 1, oldestAgeMs: 120_000, complete: true })
  t.equal(store.meta.nextSequence, 5, 'one sequence per change, no gaps')
  t.equal(store.getPayment('done')?.status, 'succeeded')
  t.same(await store.scanOpen(nowMs, 60_000, 2), { open: 2, stale: 1, oldestAgeMs: 120_000, complete: false }, 'bounded scan says it stopped early')
})

t.test('a store of another node is refused', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ringpay-store-')), 'db')
  const first = new PaymentStore(dir)
  await first.open('n1', 1)
  await first.close()
  const second = new PaymentStore(dir)
  await t.rejects(second.open('n2', 1), /belongs to node n1/)
  await second.close()
})
