// The reconciler and manual capture (issue #14): a captured payment's settlement line carries what
// was captured, so our side is its amount_captured, not the authorized amount: a partial capture
// that the PSP settled for the captured amount is matched, one settled for anything else is an
// amount_mismatch, and the day's totals count what was captured.

import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import { createPool } from '../../reconciler/db.ts'
import { closeRecon, dateSequence, generateCharges, itemsOf, merchantId, reconcile, uniquePrefix, stack, type GeneratedCharge } from './helpers.ts'

// Months of their own (classes.test.ts starts at 1, runs.test.ts at 7).
const dates = dateSequence(11, 'capture')
const admin = createPool(stack.databaseUrl)
t.teardown(async () => {
  await admin.end()
  await closeRecon()
})

/** Our side of generated charges as manual captures: authorized `authorizedExtra` more than what was captured (`captured(c)`). */
async function insertCaptured (charges: readonly GeneratedCharge[], captured: (c: GeneratedCharge) => number, authorizedExtra = 500): Promise<void> {
  await admin.query(`
    INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, psp_reference,
                          created_at, updated_at, capture_method, amount_captured, amount_to_capture)
    SELECT id, $2, 'recon-test', authorized, currency, 'succeeded', 5, 'pm_card_visa', ref, at - interval '1 second', at, 'manual', captured, captured
    FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[]) AS t(id, authorized, captured, currency, ref, at)`,
  [charges.map((c) => c.reference), merchantId, charges.map((c) => captured(c) + authorizedExtra), charges.map(captured),
    charges.map((c) => c.currency), charges.map((c) => c.psp_reference), charges.map((c) => new Date(c.created * 1000))])
}

t.test('a partial capture settled for the captured amount is matched; the totals count what was captured', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('capture'))
  // The PSP settles charges[0] for 1 more than we captured: a disagreement, not hidden by the larger authorization.
  await insertCaptured(charges, (c) => (c === charges[0] ? c.amount - 1 : c.amount))
  await reconcile(addDays(date, -1))
  await reconcile(addDays(date, 1))
  const [run] = await reconcile(date)
  t.equal(run!.counts.matched, 2)
  t.equal(run!.counts.amount_mismatch, 1)
  const item = (await itemsOf(run!.runId)).find((i) => i.checkout_id === charges[0]!.reference)!
  t.match(item, { class: 'amount_mismatch', psp_amount: String(charges[0]!.amount), internal_amount: String(charges[0]!.amount - 1) })
  const captured = charges.reduce((sum, c) => sum + BigInt(c === charges[0] ? c.amount - 1 : c.amount), 0n)
  t.match(run!.totals, [{ currency: 'EUR', internalRows: 3, internalAmount: captured }])
})
