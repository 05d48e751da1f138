// Refunds in the reconciliation: the settlement report's refund lines against our refunds, each
// refund class injected through the sandbox PSP's report switches (or our own refunds rows), on
// generated days far in the future; a clean day with refunds; a canceled payment whose charge the
// PSP took and gave back whole (matched, not a discrepancy).

import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import { createReconcilerMetrics } from '../../reconciler/metrics.ts'
import { jsonSummary, textSummary } from '../../reconciler/summary.ts'
import { refundPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, pspCharges, pspRefunds, refundSettles } from '../helpers/e2e.ts'
import {
  classesByCheckout, classesByRefund, closeRecon, dateSequence, generateCharges, insertPayments, insertRefunds, itemsOf, oursFor,
  ourRefundsFor, reconcile, reconcileOnce, setDiscrepancies, stack, uniquePrefix,
} from './helpers.ts'

const dates = dateSequence(4, 'refunds')
t.teardown(closeRecon)
t.teardown(closeDb)
const settleDeadlineMs = 60_000

/** Reconciles D-1 and D+1 first, so unmatched payments and refunds of D are final (not pending). */
async function reconcileWithNeighbours (date: string) {
  await reconcile(addDays(date, -1))
  await reconcile(addDays(date, 1))
  const [run] = await reconcile(date)
  return run!
}

t.test('a clean day with refunds: every charge and refund line matched; totals net of refunds on both sides', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 6, uniquePrefix('refund-clean'), { refundEvery: 2 })
  const refunds = ourRefundsFor(charges)
  t.equal(refunds.length, 3)
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  const run = await reconcileWithNeighbours(date)
  t.equal(run.discrepancies, 0)
  t.equal(run.pending, 0)
  t.equal(run.counts.matched, 9, 'six charge lines, three refund lines')
  t.equal(run.pspRows, 9)
  t.equal(run.internalRows, 9)
  const byRefund = await classesByRefund(run.runId)
  for (const r of refunds) t.equal(byRefund[r.refundId], 'matched', r.refundId)
  const item = (await itemsOf(run.runId)).find((i) => i.refund_id === refunds[0]!.refundId)!
  t.match(item, { line_type: 'refund', psp_reference: refunds[0]!.pspReference, checkout_id: refunds[0]!.checkoutId, psp_charge: charges[0]!.psp_reference,
    psp_amount: String(-refunds[0]!.amount), internal_amount: String(refunds[0]!.amount), fee: '0', note: null })
  const gross = charges.reduce((s, c) => s + BigInt(c.amount), 0n) - refunds.reduce((s, r) => s + BigInt(r.amount), 0n)
  t.same(run.totals, [{
    currency: 'EUR', pspRows: 9, pspAmount: gross, pspFee: charges.reduce((s, c) => s + BigInt(c.fee), 0n),
    pspNet: charges.reduce((s, c) => s + BigInt(c.net), 0n) - refunds.reduce((s, r) => s + BigInt(r.amount), 0n),
    internalRows: 9, internalAmount: gross,
  }])
})

t.test('refund_missing_at_psp: pending until both neighbour days are reconciled, then final', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('refund-missing'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  await setDiscrepancies(date, { missingRows: [refunds[0]!.refundId] })
  const [first] = await reconcile(date)
  t.equal(first!.counts.pending_settlement, 1, 'neighbours not reconciled: pending, not a discrepancy')
  t.equal(first!.discrepancies, 0)
  await reconcile(addDays(date, -1))
  const after = await reconcile(addDays(date, 1))
  const rerun = after.find((r) => r.date === date)!
  t.equal(rerun.trigger, 'follow_up')
  t.equal(rerun.counts.refund_missing_at_psp, 1)
  t.equal(rerun.discrepancies, 1)
  const byRefund = await classesByRefund(rerun.runId)
  t.equal(byRefund[refunds[0]!.refundId], 'refund_missing_at_psp')
  t.equal(byRefund[refunds[1]!.refundId], 'matched')
  t.equal((await classesByCheckout(rerun.runId))[charges[0]!.reference], 'matched', 'the charge line is unaffected')
})

t.test('refund_amount_mismatch: another amount, or another currency', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('refund-amount'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  await setDiscrepancies(date, { amountDelta: { [refunds[0]!.pspReference!]: 7 }, currencyOverride: { [refunds[1]!.refundId]: 'USD' } })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.refund_amount_mismatch, 2)
  t.equal(run.discrepancies, 2)
  const items = await itemsOf(run.runId)
  const amount = items.find((i) => i.refund_id === refunds[0]!.refundId)!
  t.same([amount.class, Number(amount.psp_amount), Number(amount.internal_amount)], ['refund_amount_mismatch', -(refunds[0]!.amount + 7), refunds[0]!.amount])
  t.match(items.find((i) => i.refund_id === refunds[1]!.refundId), { class: 'refund_amount_mismatch', note: /refunded in USD, our refund is in EUR/ })
  t.equal((await classesByRefund(run.runId))[refunds[2]!.refundId], 'matched')
  // The daemon's gauges and the CLI's summary count the refund classes like the others.
  const metrics = createReconcilerMetrics()
  metrics.recordRun(run)
  t.match(await metrics.registry.metrics(), /ringpay_reconciler_last_run_items\{psp="sandbox",class="refund_amount_mismatch"\} 2\n/)
  t.match(await metrics.registry.metrics(), /ringpay_reconciler_last_run_items\{psp="sandbox",class="refund_missing_at_psp"\} 0\n/)
  const summary = textSummary({ runs: [run], followUps: [], month: undefined, itemsPath: 'x.csv', itemsRows: 0, totalsPath: 'x.totals.csv', peakRssMb: 0 })
  t.match(summary, /refund_amount_mismatch\s+2 {2}\(discrepancy\)/)
  t.match(JSON.parse(jsonSummary({ runs: [run], followUps: [], month: undefined, itemsPath: 'x.csv', itemsRows: 0, totalsPath: 'x.totals.csv', peakRssMb: 0 })).counts,
    { refund_amount_mismatch: 2, refund_missing_internally: 0 })
})

t.test('refund_missing_internally: a refund the PSP made that we never asked for, and fabricated refund lines', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('refund-unknown'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds.slice(1))
  await setDiscrepancies(date, { extraRefundRows: 2 })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.refund_missing_internally, 3)
  t.equal(run.counts.matched, 3, 'two charges and the refund we have')
  const byRefund = await classesByRefund(run.runId)
  t.equal(byRefund[refunds[0]!.refundId], 'refund_missing_internally', 'named by the reference the PSP gave')
  t.equal(byRefund[`fabricated-${date}-refund-0`], 'refund_missing_internally')
  t.equal(byRefund[`fabricated-${date}-refund-1`], 'refund_missing_internally')
})

t.test('refund_status_mismatch: the PSP reports another status; the PSP settled a refund we still hold pending', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('refund-status'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  refunds[1]!.status = 'pending'
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  await setDiscrepancies(date, { statusOverride: { [refunds[0]!.refundId]: 'failed' } })
  const run = await reconcileWithNeighbours(date)
  t.equal(run.counts.refund_status_mismatch, 2)
  t.equal(run.discrepancies, 2)
  const items = await itemsOf(run.runId)
  const failed = items.find((i) => i.refund_id === refunds[0]!.refundId)!
  t.same([failed.class, failed.psp_status, failed.internal_status], ['refund_status_mismatch', 'failed', 'succeeded'])
  const pending = items.find((i) => i.refund_id === refunds[1]!.refundId)!
  t.same([pending.class, pending.psp_status, pending.internal_status], ['refund_status_mismatch', 'succeeded', 'pending'])
})

t.test('refund_duplicate_at_psp: the same refund twice; a second PSP refund for a refund of ours that holds another', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('refund-dup'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  // Our refund 1 holds a PSP refund id the report does not have: the line (found by our refund id) is a second refund.
  refunds[1]!.pspReference = `re_elsewhere_${refunds[1]!.pspReference!.slice(3)}`
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  await setDiscrepancies(date, { duplicateRows: [refunds[0]!.refundId] })
  const run = await reconcileWithNeighbours(date)
  const byRefund = await classesByRefund(run.runId)
  t.equal(byRefund[refunds[0]!.refundId], 'matched+refund_duplicate_at_psp', 'the first line settles it, the repeat is the discrepancy')
  t.equal(byRefund[refunds[1]!.refundId], 'refund_duplicate_at_psp+refund_missing_at_psp', 'the stray refund, and ours still unsettled')
  t.equal(run.counts.refund_duplicate_at_psp, 2)
  t.equal(run.discrepancies, 3)
})

t.test('refund cut-off: our success a day after the PSP\'s is matched with a note; further is refund_date_mismatch', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 2, uniquePrefix('refund-date'), { refundEvery: 1 })
  const refunds = ourRefundsFor(charges)
  refunds[0]!.updatedAt = new Date(`${addDays(date, 1)}T00:00:00.300Z`)
  refunds[1]!.updatedAt = new Date(`${addDays(date, 3)}T12:00:00Z`)
  await insertPayments(oursFor(charges))
  await insertRefunds(refunds)
  const run = await reconcileWithNeighbours(date)
  const items = await itemsOf(run.runId)
  t.match(items.find((i) => i.refund_id === refunds[0]!.refundId), { class: 'matched', day_offset: 1, note: /next day/ })
  t.match(items.find((i) => i.refund_id === refunds[1]!.refundId), { class: 'refund_date_mismatch', day_offset: 3 })
  t.equal(run.discrepancies, 1)
  // D+1's own run finds our refund of D+1 settled on D: matched there too, not missing.
  const [nextRun] = await reconcile(addDays(date, 1))
  t.match((await itemsOf(nextRun!.runId)).find((i) => i.refund_id === refunds[0]!.refundId),
    { class: 'matched', psp_line: null, note: new RegExp(`settled by the PSP on ${date}`) })
})

t.test('a canceled payment whose charge the PSP took and gave back whole is matched; without the refund it is a status_mismatch', async (t) => {
  const date = dates.next()
  // The shape payment-svc's refundCanceledCharge leaves: the payment canceled, holding the PSP
  // charge, its one refund (the whole amount) succeeded, amount_refunded = amount.
  const givenBack = await generateCharges(date, 2, uniquePrefix('canceled-refunded'), { refundEvery: 1, refundWhole: true })
  const kept = await generateCharges(date, 2, uniquePrefix('canceled-kept'))
  const ours = oursFor([...givenBack, ...kept]).map((p) => ({ ...p, status: 'canceled' }))
  const refunds = ourRefundsFor(givenBack)
  // The second canceled payment's refund is still pending: the money is not back yet.
  ours[1]!.amountRefunded = 0
  refunds[1]!.status = 'pending'
  await insertPayments(ours)
  await insertRefunds(refunds)
  const run = await reconcileWithNeighbours(date)
  const items = await itemsOf(run.runId)
  t.match(items.find((i) => i.line_type === 'charge' && i.checkout_id === givenBack[0]!.reference),
    { class: 'matched', internal_status: 'canceled', note: /canceled here, charged by the PSP anyway: the whole charge was refunded/ })
  t.equal((await classesByRefund(run.runId))[refunds[0]!.refundId], 'matched', 'its refund line too')
  const byCheckout = await classesByCheckout(run.runId)
  t.equal(byCheckout[givenBack[1]!.reference], 'status_mismatch', 'refund not succeeded yet')
  t.equal(byCheckout[kept[0]!.reference], 'status_mismatch', 'canceled here, charged there, never refunded')
  t.equal(byCheckout[kept[1]!.reference], 'status_mismatch')
  t.equal(run.counts.status_mismatch, 3)
  t.equal(run.counts.refund_status_mismatch, 1)
  t.equal(run.discrepancies, 4)
  // Our side counts neither the given-back charge nor its refund: the PSP's lines for it net to zero.
  t.match(run.totals, [{ currency: 'EUR', pspRows: 6, pspAmount: BigInt(kept[0]!.amount + kept[1]!.amount), internalRows: 0, internalAmount: 0n }])
})

t.test('a real payment and refund through the stack: its charge and refund lines in the PSP\'s report of the day are matched', async (t) => {
  const id = await createWith('pm_card_visa', 'recon-rf', 2500)
  t.equal((await nodeReaches(id, settleDeadlineMs)).status, 'succeeded')
  const created = await refundPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, `recon-${id}`, { amount: 900 })
  t.equal(created.status, 202)
  const refund = await refundSettles(id, created.body.id, settleDeadlineMs)
  t.equal(refund.status, 'succeeded')
  // Postgres has the refund (the reconciler's side) once the processor projected it.
  const deadline = Date.now() + settleDeadlineMs
  while ((await db().query("SELECT 1 FROM refunds WHERE refund_id = $1 AND status = 'succeeded'", [refund.id])).rowCount === 0) {
    if (Date.now() > deadline) throw new Error(`refund ${refund.id} not projected`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const [charge] = await pspCharges(id)
  const [pspRefund] = await pspRefunds(refund.id)
  const utcDate = (unixS: number): string => new Date(unixS * 1000).toISOString().slice(0, 10)
  // Other tests' payments settle on these dates too: only this payment's items are looked at.
  const chargeRun = await reconcileOnce(utcDate(charge.succeeded_at))
  t.match((await itemsOf(chargeRun.runId)).filter((i) => i.line_type === 'charge' && i.checkout_id === id),
    [{ class: 'matched', psp_reference: charge.id, psp_amount: '2500', internal_amount: '2500' }])
  const refundRun = utcDate(pspRefund.succeeded_at) === chargeRun.date ? chargeRun : await reconcileOnce(utcDate(pspRefund.succeeded_at))
  t.match((await itemsOf(refundRun.runId)).filter((i) => i.line_type === 'refund' && i.checkout_id === id),
    [{ class: 'matched', refund_id: refund.id, psp_reference: pspRefund.id, psp_charge: charge.id, psp_amount: '-900', internal_amount: '900' }])
})
