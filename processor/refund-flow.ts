// Drives one refund (issue #14) from `pending` to its outcome: on the payment's
// `payment.refund_created` change event, refund at the PSP (idempotency key derived from the
// refund id: the same on every attempt, from every processor, forever, so at most one PSP refund
// per refund id), then record the outcome on the node. Safe to run any number of times for one
// refund (redelivery after a crash, a dead-letter replay): the PSP answers a repeat with the same
// refund, and the node's refund state machine makes a repeated outcome a no-op.

import type { Payment } from '../lib/payment-codec.ts'
import { callPspWithRetries, pspOf, withNodeRetries, type ChargeFlowDeps } from './charge-flow.ts'
import { NodeError } from './node-client.ts'
import { PspError, refundIdempotencyKey, type RefundOutcome, type RefundRequest } from './psp/types.ts'

const actor = 'processor'

/** The refund `refundId` of the payment, as the PSP request for it; undefined when it is not pending. */
export function refundRequestOf (payment: Payment, refundId: string): RefundRequest | undefined {
  const refund = payment.refunds.find((r) => r.id === refundId)
  if (refund === undefined || refund.status !== 'pending') return undefined
  return { refundId, merchantId: payment.merchantId, checkoutId: payment.checkoutId, chargeReference: payment.pspReference, amount: refund.amount, currency: payment.currency }
}

async function refundWithRetries (deps: ChargeFlowDeps, request: RefundRequest, provider: string | undefined): Promise<RefundOutcome> {
  // Issue #16: at the PSP that charged the payment (its recorded psp_provider).
  const psp = pspOf(deps, provider)
  try {
    const call = await callPspWithRetries(deps, {
      provider: psp.name, merchantId: request.merchantId, checkoutId: request.checkoutId, idempotencyKey: refundIdempotencyKey(request.refundId), request: psp.refundBody(request),
      outcomePrefix: 'refund_', logFields: { checkout_id: request.checkoutId, refund_id: request.refundId },
      failedMessage: 'psp refund attempt failed', call: () => psp.refund(request),
      settles: (error) => error.code === 'psp_rejected',
    })
    return call.outcome
  } catch (error) {
    if (!(error instanceof PspError) || error.code !== 'psp_rejected') throw error
    // The PSP refused the refund itself (nothing was refunded): it fails, and its amount is
    // available again.
    return { kind: 'failed', pspReference: '', failureCode: 'psp_rejected', failureMessage: error.message }
  }
}

/** The whole flow for a refund the node has accepted (its `payment.refund_created` event). */
export async function driveRefund (deps: ChargeFlowDeps, payment: Payment, refundId: string): Promise<void> {
  const request = refundRequestOf(payment, refundId)
  // The event always carries its refund pending; anything else is a bug upstream, not a retry.
  if (request === undefined) return
  await refundAtPsp(deps, request, actor, payment.pspProvider)
}

/** Refunds at the PSP (retried, then a dead letter) and records the outcome on the node. */
export async function refundAtPsp (deps: ChargeFlowDeps, request: RefundRequest, by: string, provider: string | undefined): Promise<void> {
  await applyRefundOutcome(deps, request, await refundWithRetries(deps, request, provider), by)
}

/** Records what the PSP said of a refund on its node (the processor's own answer or the watchdog's lookup). */
export async function applyRefundOutcome (deps: ChargeFlowDeps, request: RefundRequest, outcome: RefundOutcome, by: string): Promise<void> {
  const { checkoutId, refundId } = request
  const id = { merchant_id: request.merchantId, checkout_id: checkoutId }
  const log = deps.log.child({ checkout_id: checkoutId, refund_id: refundId })
  switch (outcome.kind) {
    case 'pending':
      // The PSP finishes it asynchronously: its refund.* webhook (or the watchdog) brings the outcome.
      log.info({ psp_reference: outcome.pspReference }, 'refund pending at the psp')
      return
    case 'flagged':
      log.error({ psp_reference: outcome.pspReference, reason: outcome.reason }, 'psp refund answer flagged for review')
      await deps.flag(id, `refund ${refundId}: ${outcome.reason}`)
      return
    case 'succeeded':
    case 'failed': {
      const call = outcome.kind === 'succeeded'
        ? { to: 'succeeded' as const, actor: by, pspReference: outcome.pspReference }
        : { to: 'failed' as const, actor: by, ...(outcome.pspReference ? { pspReference: outcome.pspReference } : {}), failureCode: outcome.failureCode, failureMessage: outcome.failureMessage }
      try {
        const result = await withNodeRetries(`refund ${refundId} to ${outcome.kind}`, () => deps.node.transitionRefund(id, refundId, call))
        log.info({ psp_reference: outcome.pspReference, applied: result.applied, status: result.refund.status }, 'refund outcome recorded')
      } catch (error) {
        // The refund is already final the other way (a webhook said otherwise first): the node
        // keeps the first outcome; a person must look at the disagreement.
        if (error instanceof NodeError && error.code === 'invalid_transition') {
          await deps.flag(id, `refund ${refundId}: the psp says ${outcome.kind}, the node holds ${error.currentStatus ?? 'another outcome'}`)
          return
        }
        throw error
      }
    }
  }
}
