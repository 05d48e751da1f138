// The refund matching rules on hand-written report lines (no PSP: the report is a string), against
// refunds rows of ours in the stack's Postgres: how a line finds our refund (PSP refund id, else our
// refund id), the precedence of the classes when several things are wrong at once, amounts' signs,
// and the edge cases a generated day never shows.

import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import { stringReportSource } from '../../reconciler/psp-source.ts'
import { reconcileDay } from '../../reconciler/reconcile.ts'
import { settlementColumns } from '../../reconciler/settlement-rows.ts'
import { closeRecon, dateSequence, insertRefunds, itemsOf, merchantId, reconPool, uniquePrefix, type OurRefund } from './helpers.ts'

const dates = dateSequence(10, 'refund-matching')
t.teardown(closeRecon)

const header = settlementColumns.join(',') + '\n'

interface Line { psp: string, checkout: string, amount: number, currency?: string, status?: string, charge?: string, ours?: string }

function refundLine (date: string, l: Line): string {
  return [date, l.psp, l.checkout, merchantId, l.amount, l.currency ?? 'EUR', 0, l.amount, l.status ?? 'succeeded', `${date}T12:00:00Z`,
    'refund', l.charge ?? 'ch_x', l.ours ?? ''].join(',') + '\n'
}

/** Reconciles `date` with `lines` as its report, after its neighbours (empty reports), so nothing of ours is pending. */
async function reconcileReport (date: string, lines: Line[]) {
  const reports = (d: string): string => (d === date ? header + lines.map((l) => refundLine(date, l)).join('') : header)
  const deps = { pool: reconPool(), source: stringReportSource(reports) }
  for (const d of [addDays(date, -1), addDays(date, 1)]) await reconcileDay(deps, { psp: 'sandbox', date: d, trigger: 'test' })
  const run = await reconcileDay(deps, { psp: 'sandbox', date, trigger: 'test' })
  return { run, items: await itemsOf(run.runId) }
}

t.test('how a line finds our refund, and the precedence of the classes', async (t) => {
  const date = dates.next()
  const p = uniquePrefix('rmatch')
  const at = new Date(`${date}T12:00:01Z`)
  const ours = (n: number, over: Partial<OurRefund> = {}): OurRefund => ({
    refundId: `${p}re${n}`, checkoutId: `${p}co${n}`, pspReference: `re_${p}psp${n}`, amount: 500, currency: 'EUR', status: 'succeeded', updatedAt: at, ...over,
  })
  await insertRefunds([
    ours(1),
    ours(2, { pspReference: null }), // the PSP's id not projected yet: found by our refund id
    ours(3),
    ours(4),
    ours(5, { pspReference: null }),
    ours(6),
    ours(7), ours(8, { pspReference: `re_${p}psp7` }), // two refunds of ours holding one PSP refund id
  ])
  const { run, items } = await reconcileReport(date, [
    { psp: `re_${p}psp1`, checkout: `${p}co1`, amount: -500 },
    { psp: `re_${p}other2`, checkout: `${p}co2`, amount: -500, ours: `${p}re2` },
    { psp: `re_${p}psp3`, checkout: `${p}co3`, amount: -499, status: 'failed' },
    { psp: `re_${p}psp4`, checkout: `${p}co4`, amount: -500 },
    { psp: `re_${p}psp4`, checkout: `${p}co4`, amount: -1 },
    { psp: `re_${p}a5`, checkout: `${p}co5`, amount: -500, ours: `${p}re5` },
    { psp: `re_${p}b5`, checkout: `${p}co5`, amount: -500, ours: `${p}re5` },
    { psp: `re_${p}psp6`, checkout: `${p}co6`, amount: 500 },
    { psp: `re_${p}stranger`, checkout: `${p}co9`, amount: -700 },
    { psp: `re_${p}psp7`, checkout: `${p}co7`, amount: -500 },
  ])
  const line = (n: number) => items.find((i) => i.psp_line === String(n + 2))!
  t.match(line(0), { class: 'matched', refund_id: `${p}re1`, note: null }, 'by the PSP refund id')
  t.match(line(1), { class: 'matched', refund_id: `${p}re2`, psp_reference: `re_${p}other2` }, 'by our refund id, ours holding no PSP id yet')
  t.match(line(2), { class: 'refund_status_mismatch', psp_status: 'failed' }, 'a status wrong and an amount wrong: the status first')
  t.match(line(3), { class: 'matched' })
  t.match(line(4), { class: 'refund_duplicate_at_psp', note: /repeats an earlier line/ }, 'a repeated PSP refund id, whatever its amount')
  t.match(line(5), { class: 'matched', refund_id: `${p}re5` })
  t.match(line(6), { class: 'refund_duplicate_at_psp', note: /another line of the report already settles this refund/ })
  t.match(line(7), { class: 'refund_amount_mismatch', psp_amount: '500', internal_amount: '500' }, 'a refund line must be negative: +500 is not -500')
  t.match(line(8), { class: 'refund_missing_internally', refund_id: null, checkout_id: `${p}co9` }, 'no reference to go by')
  t.match(line(9), { class: 'matched' })
  const twin = items.filter((i) => i.psp_line === null && i.line_type === 'refund' && [`${p}re7`, `${p}re8`].includes(i.refund_id!))
  t.same(twin.map((i) => i.class), ['refund_missing_at_psp'], 'of two refunds of ours holding one PSP id, one is settled, the other is not')
  t.equal(line(9).refund_id, `${p}re7`, 'the line keeps the smaller refund id')
  t.equal(run.counts.matched, 5)
  t.equal(run.discrepancies, 6)
})
