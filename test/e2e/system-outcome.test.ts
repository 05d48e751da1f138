// The end-to-end outcome check (bench/lib/system-outcome.ts) that the e2e bench and the fault
// suite rely on must catch violations, not just bless healthy runs: fed a lost id, a stored
// "refused" one and a payment that never gets terminal, it must count each and fail.

import t from 'tap'
import { checkSystemOutcome } from '../../bench/lib/system-outcome.ts'
import { newCheckoutId } from '../helpers/api.ts'
import { createSettledForAction, createWith } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()

t.test('healthy payments pass', async (t) => {
  const ids = await Promise.all([createWith('pm_card_visa', 'soc'), createWith('pm_card_declined', 'soc')])
  const report = await checkSystemOutcome({ system: stack, acked: ids, settleDeadlineMs: 60_000 })
  t.equal(report.checked, 2)
  t.equal(report.terminal, 2)
  t.same(report.statuses, { succeeded: 1, failed: 1 })
  t.equal(report.passed, true, JSON.stringify(report.examples))
})

t.test('a lost, a refused-but-stored and a stuck payment each fail the check', async (t) => {
  const neverCreated = newCheckoutId('soclost')
  const stored = await createWith('pm_card_visa', 'socref')
  const stuck = await createSettledForAction('socstuck')
  const report = await checkSystemOutcome({ system: stack, acked: [neverCreated, stuck.id], refused: [stored], settleDeadlineMs: 1_000 })
  t.equal(report.lost, 1, 'the never-created id is lost')
  t.equal(report.refusedStored, 1, 'the stored id given as refused')
  t.equal(report.notTerminal, 1, 'the payment parked at requires_action is not terminal')
  t.equal(report.passed, false)
  t.match(report.examples.lost?.[0], neverCreated)
})

t.test('the same id acknowledged twice counts as duplicated', async (t) => {
  const id = await createWith('pm_card_visa', 'socdup')
  const report = await checkSystemOutcome({ system: stack, acked: [id, id], settleDeadlineMs: 60_000 })
  t.ok(report.duplicated >= 1)
  t.equal(report.passed, false)
})
