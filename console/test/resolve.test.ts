// Resolving flagged payments: what each action asks of the node, given the node's and the PSP's
// views, and what is audited. Postgres is the stack's (the console's role, fixtures as admin); the
// node and the PSP are fakes, so each case is exact (the browser test resolves through the real node).
// A payment is its merchant's checkout id (issue #17 part 5): every fixture is a pair.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import type { Session } from '../auth.ts'
import type { ConsoleContext } from '../context.ts'
import { resolveFlagged } from '../flagged.ts'
import type { NodePayment, TransitionCall } from '../../processor/node-client.ts'
import { NodeError } from '../../processor/node-client.ts'
import type { ChargeOutcome } from '../../processor/psp/types.ts'
import type { PaymentId } from '../../lib/payment-id.ts'
import { adminDb, closeConsoleDb, consoleDb } from './helpers.ts'

t.teardown(closeConsoleDb)

const session: Session = { operator: 'resolve-test', role: 'operator', csrfToken: 'x', idDigest: 'x' }

// Rows no node holds: final in Postgres (the watchdog and the oldest-open-payment metric skip
// them; the fake node says what the node holds), failed (no reconciliation counts them), dated
// long ago, under a merchant of their own, and deleted at the end.
const fixtureTime = '2001-02-03T04:05:06Z'

const fixtureMerchant = 'merchant_console_fixture'

async function flagged (merchantId = fixtureMerchant, checkoutId = `resolve_${randomBytes(6).toString('hex')}`): Promise<PaymentId> {
  const id = { merchant_id: merchantId, checkout_id: checkoutId }
  await adminDb().query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at, flagged_reason)
    VALUES ($1, $2, 'n1', 500, 'EUR', 'failed', 3, 'pm_card_visa', $3, $3, 'fixture')`, [id.checkout_id, id.merchant_id, fixtureTime])
  t.teardown(() => adminDb().query('DELETE FROM payments WHERE merchant_id = $1 AND checkout_id = $2', [id.merchant_id, id.checkout_id]).then(() => undefined))
  return id
}

/** The fake node answers for `node`'s payment only, as the real one keys by the pair. */
function ctxWith (node: NodePayment, psp: ChargeOutcome | undefined, calls: unknown[], refuse?: NodeError): ConsoleContext {
  const mine = (id: PaymentId): void => {
    if (id.merchant_id !== node.merchant_id || id.checkout_id !== node.checkout_id) throw new NodeError('payment_not_found', `no payment ${id.merchant_id}/${id.checkout_id}`)
  }
  return {
    pool: consoleDb(),
    node: {
      get: async (id: PaymentId) => {
        mine(id)
        return node
      },
      transition: async (id: PaymentId, call: TransitionCall) => {
        mine(id)
        calls.push({ transition: call })
        if (refuse !== undefined) throw refuse
        return { applied: true, payment: { ...node, status: call.to, version: node.version + 1 } }
      },
      refundCanceledCharge: async (id: PaymentId, reference: string, actor: string) => {
        mine(id)
        calls.push({ refund: { reference, actor } })
        return { created: true, refund: { id: 're_1', amount: node.amount, currency: node.currency, status: 'pending' } }
      },
    },
    psp: { findCharge: async () => psp },
    log: pino({ level: 'silent' }),
  } as unknown as ConsoleContext
}

const nodeOf = (id: PaymentId, status: NodePayment['status'], pspReference = 'ch_1'): NodePayment =>
  ({ checkout_id: id.checkout_id, merchant_id: id.merchant_id, status, version: 3, amount: 500, currency: 'EUR', payment_method: 'pm_card_visa', description: '', psp_reference: pspReference })

async function auditOf (id: PaymentId): Promise<any[]> {
  return (await consoleDb().query('SELECT operator, action, reason, outcome, detail FROM console_audit WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY id', [id.merchant_id, id.checkout_id])).rows
}

async function flagOf (id: PaymentId): Promise<string | null> {
  return (await consoleDb().query('SELECT flagged_reason FROM payments WHERE merchant_id = $1 AND checkout_id = $2', [id.merchant_id, id.checkout_id])).rows[0].flagged_reason
}

t.test('accept the PSP\'s state: its success, with its charge, at the version the node has', async (t) => {
  const id = await flagged()
  const calls: unknown[] = []
  const result = await resolveFlagged(ctxWith(nodeOf(id, 'processing', ''), { kind: 'succeeded', pspReference: 'ch_9' }, calls), session, id, 'accept_psp', 'psp confirmed by phone')
  t.same(calls, [{ transition: { to: 'succeeded', expectedVersion: 3, actor: 'resolve-test', pspReference: 'ch_9' } }])
  t.match(result, { applied: true, outcome: 'applied: processing → succeeded (version 4)' })
  t.equal(await flagOf(id), null, 'the flag is cleared')
  t.match(await auditOf(id), [{ operator: 'resolve-test', action: 'resolve.accept_psp', reason: 'psp confirmed by phone', outcome: /^applied/, detail: { flagged_reason: 'fixture', to: 'succeeded', psp: 'succeeded' } }])
})

t.test('accept the PSP\'s state: nothing to accept while it is not final or disagrees', async (t) => {
  for (const psp of [{ kind: 'pending', pspReference: 'ch_1' }, { kind: 'flagged', pspReference: 'ch_1', reason: 'psp charged 600 EUR, we asked 500 EUR' }, undefined] as const) {
    const id = await flagged()
    const calls: unknown[] = []
    const result = await resolveFlagged(ctxWith(nodeOf(id, 'processing'), psp, calls), session, id, 'accept_psp', 'try')
    t.equal(result.applied, false, `psp ${psp?.kind ?? 'none'}`)
    t.same(calls, [], 'the node is not asked')
    t.equal(await flagOf(id), 'fixture', 'still flagged')
    t.match(await auditOf(id), [{ outcome: /^refused/ }], 'the refusal is audited')
  }
})

t.test('cancel: the node decides; its refusal is shown and audited, the flag kept', async (t) => {
  const id = await flagged()
  const calls: unknown[] = []
  const refusal = new NodeError('invalid_transition', 'processing → canceled is not allowed')
  const result = await resolveFlagged(ctxWith(nodeOf(id, 'processing'), { kind: 'pending', pspReference: 'ch_1' }, calls, refusal), session, id, 'cancel', 'stuck')
  t.same(calls, [{ transition: { to: 'canceled', expectedVersion: 3, actor: 'resolve-test' } }])
  t.match(result, { applied: false, outcome: /refused by the node: invalid_transition/ })
  t.equal(await flagOf(id), 'fixture')
})

t.test('refund: the charge of a canceled payment the PSP took, through the node', async (t) => {
  const id = await flagged()
  const calls: unknown[] = []
  const result = await resolveFlagged(ctxWith(nodeOf(id, 'canceled', 'ch_5'), { kind: 'succeeded', pspReference: 'ch_5' }, calls), session, id, 'refund', 'customer canceled, charged anyway')
  t.same(calls, [{ refund: { reference: 'ch_5', actor: 'resolve-test' } }])
  t.match(result, { applied: true, outcome: 'refund created: re_1, 500 EUR of the charge ch_5' })
  t.equal(await flagOf(id), null)
  const other = await flagged()
  const none: unknown[] = []
  const refused = await resolveFlagged(ctxWith(nodeOf(other, 'succeeded', 'ch_6'), { kind: 'succeeded', pspReference: 'ch_6' }, none), session, other, 'refund', 'not this way')
  t.equal(refused.applied, false, 'a succeeded payment is refunded by its merchant, not here')
  t.same(none, [])
})

t.test('a payment not flagged is refused before anything is asked', async (t) => {
  const id = await flagged()
  await adminDb().query('UPDATE payments SET flagged_reason = NULL WHERE merchant_id = $1 AND checkout_id = $2', [id.merchant_id, id.checkout_id])
  await t.rejects(resolveFlagged(ctxWith(nodeOf(id, 'processing'), undefined, []), session, id, 'cancel', 'x'), { code: 'conflict' })
})

t.test('two merchants, one checkout id: resolving one payment leaves the other alone', async (t) => {
  const mine = await flagged()
  const theirs = await flagged(`${fixtureMerchant}_other`, mine.checkout_id)
  const calls: unknown[] = []
  const result = await resolveFlagged(ctxWith(nodeOf(mine, 'processing', ''), { kind: 'succeeded', pspReference: 'ch_9' }, calls), session, mine, 'accept_psp', 'one of two')
  t.equal(result.applied, true)
  t.equal(await flagOf(mine), null, 'its flag is cleared')
  t.equal(await flagOf(theirs), 'fixture', 'the other merchant\'s payment is still flagged')
  t.equal((await auditOf(mine)).length, 1, 'audited under its merchant')
  t.same(await auditOf(theirs), [], 'nothing audited under the other')
  // The other merchant's payment is asked of the node by its own pair (the fake knows only `mine`).
  await t.rejects(resolveFlagged(ctxWith(nodeOf(mine, 'processing', ''), undefined, []), session, theirs, 'cancel', 'wrong pair'), { code: 'upstream_failed' })
})
