// Every class of the reconciler, each injected through the sandbox PSP's report switches (or our
// own payments rows), on generated days far in the future; a clean day; the midnight cut-off.

import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import {
  classesByCheckout, closeRecon, currentRun, dateSequence, generateCharges, insertPayments, itemsOf, oursFor,
  reconcile, setDiscrepancies, uniquePrefix,
} from './helpers.ts'

const dates = dateSequence(1, 'classes')
t.teardown(closeRecon)

/** Reconciles D-1 and D+1 first, so unmatched payments of D are final (not pending). */
async function reconcileWithNeighbours (date: string) {
  await reconcile(addDays(date, -1))
  await reconcile(addDays(date, 1))
  const [run] = await reconcile(date)
  return run!
}

t.test('a clean day: every line matched, zero discrepancies, totals per currency', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 5, uniquePrefix('clean'))
  await insertPayments(oursFor(charges))
  const run = await reconcileWithNeighbours(date)
  t.equal(run.discrepancies, 0)
  t.equal(run.pending, 0)
  t.equal(run.counts.matched, 5)
  t.equal(run.pspRows, 5)
  t.equal(run.internalRows, 5)
  t.ok(run.neighboursReconciled)
  const sum = (f: (c: typeof charges[number]) => number): bigint => charges.reduce((s, c) => s + BigInt(f(c)), 0n)
  t.same(run.totals, [{
    currency: 'EUR', pspRows: 5, pspAmount: sum((c) => c.amount), pspFee: sum((c) => c.fee), pspNet: sum((c) => c.net),
    internalRows: 5, internalAmount: sum((c) => c.amount),
  }])
  t.equal((await currentRun(date))?.id, String(run.runId))
})

t.test('missing_at_psp: pending until both neighbour days are reconciled, then final (follow-up rerun)', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('missing-psp'))
  await insertPayments(oursFor(charges))
  await setDiscrepancies(date, { missingRows: [charges[0]!.reference] })

  const [first] = await reconcile(date)
  t.equal(first!.counts.pending_settlement, 1, 'neighbours not reconciled: pending, not a discrepancy')
  t.equal(first!.discrepancies, 0)
  t.equal(first!.counts.matched, 2)

  const before = await reconcile(addDays(date, -1))
  t.equal(before.length, 2, 'D-1 reruns D, which had pending rows')
  t.equal(before[1]!.counts.pending_settlement, 1, 'still pending: D+1 not reconciled')

  const after = await reconcile(addDays(date, 1))
  t.equal(after.length, 2, 'D+1 reruns D')
  const rerun = after[1]!
  t.equal(rerun.date, date)
  t.equal(rerun.trigger, 'follow_up')
  t.equal(rerun.counts.missing_at_psp, 1)
  t.equal(rerun.counts.pending_settlement, 0)
  t.equal(rerun.discrepancies, 1)
  t.equal((await classesByCheckout(rerun.runId))[charges[0]!.reference], 'missing_at_psp')
  t.equal((await currentRun(date))?.id, String(rerun.runId), 'the follow-up is the current result')
})

t.test('missing_internally: a settled charge we have no payment for, and fabricated rows', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('missing-int'))
  await insertPayments(oursFor(charges.slice(0, 2)))
  await setDiscrepancies(date, { extraRows: 2 })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.missing_internally, 3)
  t.equal(run.counts.matched, 2)
  const classes = await classesByCheckout(run.runId)
  t.equal(classes[charges[2]!.reference], 'missing_internally')
  t.equal(classes[`fabricated-${date}-0`], 'missing_internally')
  t.equal(classes[`fabricated-${date}-1`], 'missing_internally')
})

t.test('amount_mismatch', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('amount'))
  await insertPayments(oursFor(charges))
  await setDiscrepancies(date, { amountDelta: { [charges[1]!.psp_reference]: 7 } })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.amount_mismatch, 1)
  t.equal(run.discrepancies, 1)
  const item = (await itemsOf(run.runId)).find((i) => i.checkout_id === charges[1]!.reference)!
  t.equal(item.class, 'amount_mismatch')
  t.equal(Number(item.psp_amount), charges[1]!.amount + 7)
  t.equal(Number(item.internal_amount), charges[1]!.amount)
})

t.test('currency_mismatch', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('currency'))
  await insertPayments(oursFor(charges))
  await setDiscrepancies(date, { currencyOverride: { [charges[2]!.reference]: 'USD' } })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.currency_mismatch, 1)
  t.equal(run.discrepancies, 1)
  t.equal((await classesByCheckout(run.runId))[charges[2]!.reference], 'currency_mismatch')
  t.same(run.totals.map((x) => [x.currency, x.pspRows, x.internalRows]), [['EUR', 2, 3], ['USD', 1, 0]])
})

t.test('status_mismatch: the PSP reports another status; the PSP settled what we mark failed', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('status'))
  const ours = oursFor(charges)
  ours[1]!.status = 'failed'
  await insertPayments(ours)
  await setDiscrepancies(date, { statusOverride: { [charges[0]!.reference]: 'refunded' } })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.status_mismatch, 2)
  t.equal(run.counts.matched, 1)
  const items = await itemsOf(run.runId)
  const refunded = items.find((i) => i.checkout_id === charges[0]!.reference)!
  t.same([refunded.class, refunded.psp_status, refunded.internal_status], ['status_mismatch', 'refunded', 'succeeded'])
  const failed = items.find((i) => i.checkout_id === charges[1]!.reference)!
  t.same([failed.class, failed.psp_status, failed.internal_status], ['status_mismatch', 'succeeded', 'failed'])
})

t.test('duplicate_at_psp: the same charge twice in the report', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('dup'))
  await insertPayments(oursFor(charges))
  await setDiscrepancies(date, { duplicateRows: [charges[0]!.reference] })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.duplicate_at_psp, 1)
  t.equal(run.counts.matched, 3, 'the first line still settles the payment: it is not also missing')
  t.equal(run.discrepancies, 1)
  t.equal((await classesByCheckout(run.runId))[charges[0]!.reference], 'matched+duplicate_at_psp')
})

t.test('duplicate_at_psp: a second PSP charge for a checkout id whose payment holds another charge', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('dup2'))
  const ours = oursFor(charges)
  // Our payment for charge 0 holds a psp_reference the report does not have (its real charge):
  ours[0]!.pspReference = `ch_elsewhere_${charges[0]!.psp_reference.slice(3)}`
  await insertPayments(ours)
  const run = await reconcileWithNeighbours(date)
  const classes = await classesByCheckout(run.runId)
  t.equal(classes[charges[0]!.reference], 'duplicate_at_psp+missing_at_psp', 'the stray charge, and our payment still unsettled')
  t.equal(classes[charges[1]!.reference], 'matched')
})

t.test('midnight cut-off: a day either side is matched with a note, further is date_mismatch, pending until the next day is in', async (t) => {
  const date = dates.next()
  const next = addDays(date, 1)
  const onDate = await generateCharges(date, 3, uniquePrefix('midnight-d'))
  const onNext = await generateCharges(next, 1, uniquePrefix('midnight-n'))
  const ours = oursFor([...onDate, ...onNext])
  // The PSP settled it on D; we recorded the success just after midnight (D+1).
  ours[0]!.updatedAt = new Date(`${next}T00:00:00.400Z`)
  // The PSP settled it on D; we recorded the success on D+3: outside the grace.
  ours[1]!.updatedAt = new Date(`${addDays(date, 3)}T12:00:00Z`)
  // We recorded the success just before midnight (D); the PSP settled it on D+1.
  ours[3]!.updatedAt = new Date(`${date}T23:59:59.900Z`)
  await insertPayments(ours)
  await reconcile(addDays(date, -1))

  const [first] = await reconcile(date)
  let classes = await classesByCheckout(first!.runId)
  t.equal(classes[onDate[0]!.reference], 'matched', 'our success on D+1: matched')
  t.match((await itemsOf(first!.runId)).find((i) => i.checkout_id === onDate[0]!.reference), { day_offset: 1, note: /next day/ })
  t.equal(classes[onDate[1]!.reference], 'date_mismatch')
  t.equal(classes[onDate[2]!.reference], 'matched')
  t.equal(classes[onNext[0]!.reference], 'pending_settlement', 'D+1 not reconciled yet: pending, not missing')
  t.equal(first!.discrepancies, 1, 'only the date_mismatch')

  const afterNext = await reconcile(next)
  const nextRun = afterNext[0]!
  classes = await classesByCheckout(nextRun.runId)
  t.equal(classes[onNext[0]!.reference], 'matched', "D+1's line for our success on D: matched")
  t.match((await itemsOf(nextRun.runId)).find((i) => i.checkout_id === onNext[0]!.reference), { day_offset: -1, note: /previous day/ })
  t.equal(classes[onDate[0]!.reference], 'matched', 'our success on D+1 that the PSP settled on D: matched on D+1 too')
  t.match((await itemsOf(nextRun.runId)).find((i) => i.checkout_id === onDate[0]!.reference), { psp_line: null, note: new RegExp(`settled by the PSP on ${date}`) })
  t.equal(nextRun.discrepancies, 0)

  const followUp = afterNext.find((r) => r.date === date)!
  t.equal(followUp.trigger, 'follow_up', 'D had pending rows: rerun once D+1 was in')
  classes = await classesByCheckout(followUp.runId)
  t.equal(classes[onNext[0]!.reference], 'matched')
  t.match((await itemsOf(followUp.runId)).find((i) => i.checkout_id === onNext[0]!.reference), { day_offset: 1, note: new RegExp(`settled by the PSP on ${next}`) })
  t.equal(followUp.pending, 0)
  t.equal(followUp.discrepancies, 1, 'still only the date_mismatch')
})

t.test('two payments of ours holding one psp_reference: one is matched, the other is unsettled (missing_at_psp)', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('shared-ref'))
  const ours = oursFor(charges)
  const twin = { ...ours[0]!, checkoutId: `${charges[0]!.reference}-twin` }
  await insertPayments([...ours, twin])
  const run = await reconcileWithNeighbours(date)
  const classes = await classesByCheckout(run.runId)
  t.same([classes[charges[0]!.reference], classes[twin.checkoutId]].sort(), ['matched', 'missing_at_psp'])
  t.equal(classes[charges[1]!.reference], 'matched')
  t.equal(run.counts.matched, 2)
  t.equal(run.discrepancies, 1)
})
