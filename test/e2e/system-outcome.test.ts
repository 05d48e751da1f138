// The end-to-end outcome check (bench/lib/system-outcome.ts) that the e2e bench and the fault
// suite rely on must catch violations, not just bless healthy runs: fed a lost id, a stored
// "refused" one and a payment that never gets terminal, it must count each and fail.

import pg from 'pg'
import t from 'tap'
import { checkSystemOutcome } from '../../bench/lib/system-outcome.ts'
import { call, createPayment, newCheckoutId, refundPayment } from '../helpers/api.ts'
import { closeDb, createSettledForAction, createWith, nodeReaches, refundSettles } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
t.teardown(closeDb)

/** A succeeded payment of 1999 with a settled refund of 500. */
async function refunded (prefix: string): Promise<string> {
  const id = await createWith('pm_card_visa', prefix)
  await nodeReaches(id, 60_000)
  const res = await refundPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, 'soc-1', { amount: 500 })
  if (res.status !== 202) throw new Error(`refund of ${id}: ${res.status} ${res.text}`)
  await refundSettles(id, res.body.id, 60_000)
  return id
}

t.test('healthy payments pass', async (t) => {
  const ids = await Promise.all([createWith('pm_card_visa', 'soc'), createWith('pm_card_declined', 'soc')])
  const report = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: ids, settleDeadlineMs: 60_000 })
  t.equal(report.checked, 2)
  t.equal(report.terminal, 2)
  t.same(report.statuses, { succeeded: 1, failed: 1 })
  t.equal(report.passed, true, JSON.stringify(report.examples))
})

t.test('a lost, a refused-but-stored and a stuck payment each fail the check', async (t) => {
  const neverCreated = newCheckoutId('soclost')
  const stored = await createWith('pm_card_visa', 'socref')
  const stuck = await createSettledForAction('socstuck')
  const report = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [neverCreated, stuck.id], refused: [stored], settleDeadlineMs: 1_000 })
  t.equal(report.lost, 1, 'the never-created id is lost')
  t.equal(report.refusedStored, 1, 'the stored id given as refused')
  t.equal(report.notTerminal, 1, 'the payment parked at requires_action is not terminal')
  t.equal(report.passed, false)
  t.match(report.examples.lost?.[0], neverCreated)
})

t.test('the same id acknowledged twice counts as duplicated', async (t) => {
  const id = await createWith('pm_card_visa', 'socdup')
  const report = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [id, id], settleDeadlineMs: 60_000 })
  t.ok(report.duplicated >= 1)
  t.equal(report.passed, false)
})

t.test('refunds: a healthy refund passes; one Postgres shows beyond the amount fails', async (t) => {
  const healthy = await refunded('socrf')
  const ok = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [healthy], settleDeadlineMs: 60_000 })
  t.equal(ok.refunds, 1)
  t.equal(ok.passed, true, JSON.stringify(ok.examples))
  const tampered = await refunded('socrfbad')
  // A fixture written as the admin role: a refund only Postgres knows, taking the rest and more.
  const admin = new pg.Pool({ connectionString: stack.databaseUrl, max: 1 })
  t.teardown(async () => {
    await admin.query('DELETE FROM refunds WHERE refund_id = $1', [`re_fake_${tampered}`])
    await admin.end()
  })
  await admin.query(`INSERT INTO refunds (refund_id, checkout_id, merchant_id, amount, currency, status, payment_version, created_at, updated_at)
    VALUES ($1, $2, 'merchant_demo', 1999, 'EUR', 'succeeded', 1, now(), now())`, [`re_fake_${tampered}`, tampered])
  const bad = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [tampered], settleDeadlineMs: 60_000 })
  t.equal(bad.refundsOverCaptured, 1, 'Postgres holds refunds beyond the amount')
  t.equal(bad.refundMismatches, 1, 'a refund in Postgres that is not on the node')
  t.equal(bad.passed, false)
})

t.test('manual capture: a healthy capture passes; Postgres disagreeing on what was captured fails', async (t) => {
  const captured = async (prefix: string): Promise<string> => {
    const id = newCheckoutId(prefix)
    const made = await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa', capture_method: 'manual' })
    if (made.status !== 202) throw new Error(`create ${id}: ${made.status} ${made.text}`)
    await nodeReaches(id, 60_000, new Set(['requires_capture']))
    const res = await call(`${stack.publicUrl}/payments/${id}/capture`, {
      method: 'POST', headers: { authorization: `Bearer ${stack.apiKeys.merchant_demo}`, 'content-type': 'application/json' }, body: '{"amount":1200}',
    })
    if (res.status !== 202) throw new Error(`capture of ${id}: ${res.status} ${res.text}`)
    await nodeReaches(id, 60_000)
    return id
  }
  const healthy = await captured('soccap')
  const ok = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [healthy], settleDeadlineMs: 60_000 })
  t.equal(ok.captures, 1)
  t.equal(ok.passed, true, JSON.stringify(ok.examples))
  const tampered = await captured('soccapbad')
  const admin = new pg.Pool({ connectionString: stack.databaseUrl, max: 1 })
  t.teardown(() => admin.end())
  // Once projected (the check waits for the node's version), Postgres is made to claim the whole authorization.
  const ready = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [tampered], settleDeadlineMs: 60_000 })
  t.equal(ready.passed, true, JSON.stringify(ready.examples))
  await admin.query('UPDATE payments SET amount_captured = amount WHERE checkout_id = $1', [tampered])
  const bad = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: [tampered], settleDeadlineMs: 60_000 })
  t.equal(bad.captureMismatches, 1, 'node captured 1200, Postgres 1999')
  t.match(bad.examples.captureMismatches?.[0], /Postgres 1999/)
  t.equal(bad.passed, false)
})
