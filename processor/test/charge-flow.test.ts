// applyOutcome against a scripted node: what the processor does when someone else moved the
// payment between its charge and its transition.

import t from 'tap'
import type { ChargeFlowDeps } from '../charge-flow.ts'
import { applyOutcome, tokenPlaceholder, withoutToken } from '../charge-flow.ts'
import { NodeError, type NodeClient, type NodePayment, type TransitionCall } from '../node-client.ts'
import { createLogger } from '../../lib/log.ts'

function payment (over: Partial<NodePayment>): NodePayment {
  return {
    checkout_id: 'co_race', merchant_id: 'm', status: 'processing', version: 2, amount: 100, currency: 'EUR',
    payment_method: 'pm_card_requires_action', description: '', ...over,
  }
}

/** A node whose transitions answer from `script` in turn and whose reads answer `reads` in turn. */
function scriptedNode (script: Array<NodePayment | NodeError>, reads: NodePayment[]): { node: NodeClient, calls: TransitionCall[] } {
  const calls: TransitionCall[] = []
  const node = {
    async transition (_id: string, call: TransitionCall) {
      calls.push(call)
      const next = script.shift()
      if (next === undefined) throw new Error('unexpected transition')
      if (next instanceof NodeError) throw next
      return { applied: true, payment: next }
    },
    async get () {
      const next = reads.shift()
      if (next === undefined) throw new Error('unexpected read')
      return next
    },
  } as unknown as NodeClient
  return { node, calls }
}

function deps (node: NodeClient): ChargeFlowDeps {
  return { node, log: createLogger('processor-test', {}) } as unknown as ChargeFlowDeps
}

const outcome = { kind: 'requires_action', pspReference: 'ch_ra_1' } as const

t.test('a requires_action its webhook recorded first, and that has been moved on since, stays moved on', async (t) => {
  // v2 processing (charged) → webhook: v3 requires_action ch_ra_1 → someone: v4 processing; then our call arrives.
  const movedOn = payment({ status: 'processing', version: 4, psp_reference: 'ch_ra_1' })
  const { node, calls } = scriptedNode([new NodeError('stale_version', 'expected 2', { currentStatus: 'processing', currentVersion: 4 })], [movedOn])
  const ended = await applyOutcome(deps(node), payment({}), outcome, 'processor')
  t.equal(calls.length, 1, 'one transition tried, none re-applied after the re-read')
  t.same(ended, movedOn, 'the payment as the node has it')
})

t.test('a requires_action nobody recorded yet is applied after a stale re-read', async (t) => {
  // v2 processing → someone else's unrelated change: v3 processing without the reference.
  const applied = payment({ status: 'requires_action', version: 4, psp_reference: 'ch_ra_1' })
  const { node, calls } = scriptedNode([
    new NodeError('stale_version', 'expected 2', { currentStatus: 'processing', currentVersion: 3 }),
    applied,
  ], [payment({ version: 3 })])
  const ended = await applyOutcome(deps(node), payment({}), outcome, 'processor')
  t.same(calls.map((c) => [c.to, c.expectedVersion, c.pspReference]), [['requires_action', 2, 'ch_ra_1'], ['requires_action', 3, 'ch_ra_1']])
  t.same(ended, applied)
})

t.test('a terminal outcome is applied even when the payment already holds its reference', async (t) => {
  // requires_action ch_1 → the customer completed the action: processing ch_1 → the PSP says succeeded ch_1.
  const current = payment({ status: 'processing', version: 4, psp_reference: 'ch_1' })
  const done = payment({ status: 'succeeded', version: 5, psp_reference: 'ch_1' })
  const { node, calls } = scriptedNode([done], [])
  const ended = await applyOutcome(deps(node), current, { kind: 'succeeded', pspReference: 'ch_1' }, 'processor')
  t.same(calls.map((c) => c.to), ['succeeded'])
  t.same(ended, done)
})

t.test('a PSP failure message quoting the token is recorded without it (#17 part 7: the token is only stored sealed)', async (t) => {
  t.equal(withoutToken("No such payment method: 'pm_secret_1'", 'pm_secret_1'), `No such payment method: '${tokenPlaceholder}'`)
  t.equal(withoutToken('card declined', 'pm_secret_1'), 'card declined')
  t.equal(withoutToken('a pm b', 'pm'), 'a pm b', 'too short a token to search for')
  const current = payment({ payment_method: 'pm_secret_1' })
  const failed = payment({ status: 'failed', version: 3 })
  const { node, calls } = scriptedNode([failed], [])
  await applyOutcome(deps(node), current, { kind: 'failed', pspReference: '', failureCode: 'psp_rejected', failureMessage: "No such payment method: 'pm_secret_1' (pm_secret_1)" }, 'processor')
  t.equal(calls[0]?.failureMessage, `No such payment method: '${tokenPlaceholder}' (${tokenPlaceholder})`)
})
