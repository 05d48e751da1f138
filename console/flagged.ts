// Flagged payments (payments.flagged_reason: the PSP disagreed, or a step could not be finished):
// the queue, oldest first, and the resolve actions. An action goes through the node's normal
// transition path (internal API, as the `console` service, with the version the operator saw
// checked by the node), is audited (console_audit: who, when, why, what came of it, refused ones
// too), and clears the flag once the node took it. A payment is its merchant's checkout id
// (issue #17 part 5): every lookup, node call and audit row names both.

import type { Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { ConsoleProblem } from './errors.ts'
import { html, page, when, type Raw } from './html.ts'
import { consoleLimits as limits } from './limits.ts'
import { decodeCursor, encodeCursor, paymentPath, statesOf } from './payments.ts'
import { mayDo } from './roles.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import { NodeError, type TransitionCall } from '../processor/node-client.ts'

export const resolveActions = ['accept_psp', 'cancel', 'refund'] as const
export type ResolveAction = typeof resolveActions[number]

export async function flaggedPage (ctx: ConsoleContext, session: Session, query: URLSearchParams): Promise<string> {
  const after = query.get('after')
  const params: unknown[] = [limits.flaggedPageSize + 1]
  let cursorSql = ''
  if (after !== null && after !== '') {
    const c = decodeCursor(after)
    params.push(c.at, c.merchant_id, c.checkout_id)
    cursorSql = 'AND (updated_at, merchant_id, checkout_id) > ($2::timestamptz, $3, $4)'
  }
  // payments_flagged_idx (updated_at, merchant_id, checkout_id) WHERE flagged_reason IS NOT NULL.
  const { rows } = await ctx.pool.query<{ checkout_id: string, merchant_id: string, status: string, flagged_reason: string, updated_at: Date, updated_at_text: string }>(
    `SELECT checkout_id, merchant_id, status, flagged_reason, updated_at, updated_at::text AS updated_at_text FROM payments
      WHERE flagged_reason IS NOT NULL ${cursorSql} ORDER BY updated_at, merchant_id, checkout_id LIMIT $1`, params)
  const more = rows.length > limits.flaggedPageSize
  const shown = rows.slice(0, limits.flaggedPageSize)
  const last = shown[shown.length - 1]
  return page('Flagged payments', session, html`
<p>Payments a person must look at. Open one to compare the node, Postgres and the PSP${mayDo(session.role, 'resolve_flagged') ? ' and resolve it' : ''}.</p>
<table id="flagged"><thead><tr><th>Checkout id</th><th>Merchant</th><th>Status</th><th>Why</th><th>Since</th></tr></thead><tbody>
${shown.map((r) => html`<tr><td><a href="${paymentPath(r)}">${r.checkout_id}</a></td><td>${r.merchant_id}</td><td>${r.status}</td><td>${r.flagged_reason}</td><td>${when(r.updated_at)}</td></tr>`)}
</tbody></table>
${shown.length === 0 ? html`<p class="muted">Nothing is flagged.</p>` : ''}
${more && last !== undefined ? html`<p><a href="/flagged?after=${encodeCursor(last.updated_at_text, last)}">Next page</a></p>` : ''}`)
}

export interface ResolveResult {
  applied: boolean
  outcome: string
}

/** The node move an action asks for, given the node's payment and the PSP's view. */
function moveFor (action: Exclude<ResolveAction, 'refund'>, version: number, actor: string, psp: Awaited<ReturnType<typeof statesOf>>['pspOutcome']): TransitionCall {
  if (action === 'cancel') return { to: 'canceled', expectedVersion: version, actor }
  if (psp === undefined) throw new ConsoleProblem('conflict', 'the PSP holds no charge for this payment: there is no state to accept')
  switch (psp.kind) {
    case 'succeeded':
      return { to: 'succeeded', expectedVersion: version, actor, pspReference: psp.pspReference }
    case 'failed':
    case 'canceled':
      return { to: psp.kind, expectedVersion: version, actor, pspReference: psp.pspReference, failureCode: psp.failureCode, failureMessage: psp.failureMessage }
    case 'flagged':
      throw new ConsoleProblem('conflict', `the PSP's charge is not one to accept: ${psp.reason}`)
    default:
      throw new ConsoleProblem('conflict', `the PSP's charge is ${psp.kind}, not final: nothing to accept yet`)
  }
}

/**
 * Resolves a flagged payment. The operator's role is checked by the caller (server.ts); here the
 * node decides whether the move is allowed, and every attempt is audited with its outcome.
 */
export async function resolveFlagged (ctx: ConsoleContext, session: Session, id: PaymentId, action: ResolveAction, reason: string): Promise<ResolveResult> {
  const log = ctx.log.child({ merchant_id: id.merchant_id, checkout_id: id.checkout_id, operator: session.operator, action })
  const { rows } = await ctx.pool.query<{ flagged_reason: string | null }>('SELECT flagged_reason FROM payments WHERE merchant_id = $1 AND checkout_id = $2', [id.merchant_id, id.checkout_id])
  if (rows[0] === undefined) throw new ConsoleProblem('not_found')
  if (rows[0].flagged_reason === null) throw new ConsoleProblem('conflict', 'the payment is not flagged (resolved already?)')
  const flaggedReason = rows[0].flagged_reason
  let result: ResolveResult
  let detail: Record<string, unknown> = { flagged_reason: flaggedReason }
  try {
    const { nodePayment, pspOutcome } = await statesOf(ctx, id, undefined)
    if (nodePayment === undefined) throw new ConsoleProblem('upstream_failed', 'the payment\'s node did not answer with it')
    detail = { ...detail, from: nodePayment.status, version: nodePayment.version, psp: pspOutcome?.kind ?? null }
    if (action === 'refund') {
      // Only the case the node has a path for: a canceled payment whose charge the PSP took anyway
      // (the processor flags it when it cannot give it back itself). The node refunds the whole
      // charge; the processor then refunds at the PSP like any refund.
      const reference = nodePayment.psp_reference ?? ''
      if (nodePayment.status !== 'canceled' || pspOutcome?.kind !== 'succeeded' || reference === '' || pspOutcome.pspReference !== reference) {
        throw new ConsoleProblem('conflict', `a refund here gives back the charge of a canceled payment the PSP took; the node has it ${nodePayment.status}, the PSP ${pspOutcome?.kind ?? 'has no charge'}`)
      }
      const answer = await ctx.node.refundCanceledCharge(id, reference, session.operator)
      detail = { ...detail, refund_id: answer.refund.id, amount: answer.refund.amount, currency: answer.refund.currency }
      result = { applied: true, outcome: `${answer.created ? 'refund created' : 'refund already made'}: ${answer.refund.id}, ${answer.refund.amount} ${answer.refund.currency} of the charge ${reference}` }
    } else {
      const move = moveFor(action, nodePayment.version, session.operator, pspOutcome)
      detail = { ...detail, to: move.to }
      const answer = await ctx.node.transition(id, move)
      result = { applied: true, outcome: answer.applied ? `applied: ${nodePayment.status} → ${answer.payment.status} (version ${answer.payment.version})` : `already ${answer.payment.status}` }
    }
    // The node holds the decision now: the flag is done with (the projection brings the status).
    await ctx.pool.query('UPDATE payments SET flagged_reason = NULL WHERE merchant_id = $1 AND checkout_id = $2 AND flagged_reason = $3', [id.merchant_id, id.checkout_id, flaggedReason])
  } catch (error) {
    if (error instanceof NodeError && (error.code === 'invalid_transition' || error.code === 'stale_version' || error.code === 'node_refused')) {
      result = { applied: false, outcome: `refused by the node: ${error.message}` }
    } else if (error instanceof ConsoleProblem && error.code === 'conflict') {
      result = { applied: false, outcome: `refused: ${error.detail ?? error.message}` }
    } else {
      await audit(ctx, session.operator, `resolve.${action}`, id, reason, `failed: ${(error as Error).message}`, detail)
      throw error
    }
  }
  await audit(ctx, session.operator, `resolve.${action}`, id, reason, result.outcome, detail)
  log.info({ audit: true, applied: result.applied, outcome: result.outcome }, 'flagged payment resolve')
  return result
}

/** One audit row; `payment` is the one payment the action was about, or null (a rerun, a replay of many). */
export async function audit (ctx: Pick<ConsoleContext, 'pool'>, operator: string, action: string, payment: PaymentId | null, reason: string, outcome: string, detail: Record<string, unknown> = {}): Promise<void> {
  await ctx.pool.query('INSERT INTO console_audit (operator, action, merchant_id, checkout_id, reason, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [operator, action, payment?.merchant_id ?? null, payment?.checkout_id ?? null, reason, outcome.slice(0, 1000), JSON.stringify(detail)])
}

export function resolveNotice (result: ResolveResult): Raw {
  return result.applied ? html`<p class="ok" id="notice">Resolved: ${result.outcome}</p>` : html`<p class="error" id="notice">Not resolved: ${result.outcome}</p>`
}
