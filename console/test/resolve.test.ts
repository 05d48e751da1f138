// Resolving flagged payments: what each action asks of the node, given the node's and the PSP's
// views, and what is audited. Postgres is the stack's (the console's role, fixtures as admin); the
// node and the PSP are fakes, so each case is exact (the browser test resolves through the real node).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import type { Session } from '../auth.ts'
import type { ConsoleContext } from '../context.ts'
import { resolveFlagged } from '../flagged.ts'
import type { NodePayment, TransitionCall } from '../../processor/node-client.ts'
import { NodeError } from '../../processor/node-client.ts'
import type { ChargeOutcome } from '../../processor/psp/types.ts'
import { adminDb, closeConsoleDb, consoleDb } from './helpers.ts'

t.teardown(closeConsoleDb)

const session: Session = { operator: 'resolve-test', role: 'operator', csrfToken: 'x', idDigest: 'x' }

// Rows no node holds: final in Postgres (the watchdog and the oldest-open-payment metric skip
// them; the fake node says what the node holds), failed (no reconciliation counts them), dated
// long ago, under a merchant of their own, and deleted at the end.
const fixtureTime = '2001-02-03T04:05:06Z'

async function flagged (): Promise<string> {
  const id = `resolve_${randomBytes(6).toString('hex')}`
  await adminDb().query(`INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method, created_at, updated_at, flagged_reason)
    VALUES ($1, 'merchant_console_fixture', 'n1', 500, 'EUR', 'failed', 3, 'pm_card_visa', $2, $2, 'fixture')`, [id, fixtureTime])
  t.teardown(() => adminDb().query('DELETE FROM payments WHERE checkout_id = $1', [id]).then(() => undefined))
  return id
}

function ctxWith (node: NodePayment, psp: ChargeOutcome | undefined, calls: unknown[], refuse?: NodeError): ConsoleContext {
  return {
    pool: consoleDb(),
    node: {
      get: async () => node,
      transition: async (id: string, call: TransitionCall) => {
        calls.push({ transition: call })
        if (refuse !== undefined) throw refuse
        return { applied: true, payment: { ...node, status: call.to, version: node.version + 1 } }
      },
      refundCanceledCharge: async (id: string, reference: string, actor: string) => {
        calls.push({ refund: { reference, actor } })
        return { created: true, refund: { id: 're_1', amount: node.amount, currency: node.currency, status: 'pending' } }
      },
    },
    psp: { findCharge: async () => psp },
    log: pino({ level: 'silent' }),
  } as unknown as ConsoleContext
}

const nodeOf = (id: string, status: NodePayment['status'], pspReference = 'ch_1'): NodePayment =>
  ({ checkout_id: id, merchant_id: 'merchant_console_fixture', status, version: 3, amount: 500, currency: 'EUR', payment_method: 'pm_card_visa', description: '', psp_reference: pspReference })

async function auditOf (id: string): Promise<any[]> {
  return (await consoleDb().query('SELECT operator, action, reason, outcome, detail FROM console_audit WHERE checkout_id = $1 ORDER BY id', [id])).rows
}

async function flagOf (id: string): Promise<string | null> {
  return (await consoleDb().query('SELECT flagged_reason FROM payments WHERE checkout_id = $1', [id])).rows[0].flagged_reason
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
  await adminDb().query('UPDATE payments SET flagged_reason = NULL WHERE checkout_id = $1', [id])
  await t.rejects(resolveFlagged(ctxWith(nodeOf(id, 'processing'), undefined, []), session, id, 'cancel', 'x'), { code: 'conflict' })
})
