// The reconciler when two merchants use the same checkout ids (issue #17 part 5: checkout ids are
// per merchant, so those are two payments): each settlement line is matched with its own
// merchant's payment, also when it is found by checkout id (our payment holds no PSP reference),
// and a disagreement of one merchant's payment is not hidden by, nor blamed on, the other's.

import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import { closeRecon, dateSequence, generateCharges, insertPayments, itemsOf, oursFor, reconcile, uniquePrefix } from './helpers.ts'

// Months of their own (capture.test.ts starts at 11).
const dates = dateSequence(12, 'shared-checkout-ids')
t.teardown(closeRecon)

const merchantA = 'm_recon_shared_a'
const merchantB = 'm_recon_shared_b'

t.test('two merchants\' payments of the same checkout ids: each line matches its own merchant\'s payment', async (t) => {
  const date = dates.next()
  const prefix = uniquePrefix('shared')
  const chargesA = await generateCharges(date, 3, prefix, undefined, merchantA)
  const chargesB = await generateCharges(date, 3, prefix, undefined, merchantB)
  t.same(chargesA.map((c) => c.reference), chargesB.map((c) => c.reference), 'the same checkout ids')
  // Our side: A's payments hold their PSP references (matched by reference); B's hold none (the
  // outcome was recorded without one), so its lines are found by merchant and checkout id. B's
  // first payment disagrees on the amount: only that line may say so.
  await insertPayments([
    ...oursFor(chargesA).map((p) => ({ ...p, merchantId: merchantA })),
    ...oursFor(chargesB).map((p, i) => ({ ...p, merchantId: merchantB, pspReference: null, amount: i === 0 ? p.amount + 1 : p.amount })),
  ])
  await reconcile(addDays(date, -1))
  await reconcile(addDays(date, 1))
  const [run] = await reconcile(date)
  const items = (await itemsOf(run!.runId)) as Array<Awaited<ReturnType<typeof itemsOf>>[number] & { merchant_id: string }>
  const ofMerchant = (merchant: string): Record<string, string> =>
    Object.fromEntries(items.filter((i) => i.merchant_id === merchant).map((i) => [i.checkout_id!, i.class]))
  t.same(ofMerchant(merchantA), Object.fromEntries(chargesA.map((c) => [c.reference, 'matched'])), 'A: every line matched with A\'s payment')
  t.same(ofMerchant(merchantB), Object.fromEntries(chargesB.map((c, i) => [c.reference, i === 0 ? 'amount_mismatch' : 'matched'])),
    'B: its lines matched with B\'s payments; its own disagreement is B\'s')
  const mismatch = items.find((i) => i.merchant_id === merchantB && i.class === 'amount_mismatch')!
  t.match(mismatch, { psp_reference: chargesB[0]!.psp_reference, psp_amount: String(chargesB[0]!.amount), internal_amount: String(chargesB[0]!.amount + 1) })
  t.equal(items.length, 6, 'one item per line: no payment left without its line, none matched twice')
  t.equal(run!.counts.matched, 5)
  t.equal(run!.counts.amount_mismatch, 1)
  t.equal(run!.counts.duplicate_at_psp ?? 0, 0)
  t.equal(run!.counts.missing_at_psp ?? 0, 0)
})
