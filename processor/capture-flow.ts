// Drives a manual payment's capture (issue #14): on its `payment.capture_requested` change event
// (the merchant's POST /payments/{id}/capture recorded `amount_to_capture` on the node), capture
// the authorization at the PSP (idempotency key derived from merchant and checkout id: the same on every
// attempt, from every processor, after a crash and on a dead-letter replay, so at most one capture
// per payment), then move the payment to `succeeded` on its node, which sets `amount_captured`.
// Safe to run any number of times: the PSP answers a repeat with the same capture, and the node's
// state machine makes a repeated outcome a no-op.

import { applyOutcome, applyTransition, callPspWithRetries, chargeRequestOf, pspOf, type ChargeFlowDeps } from './charge-flow.ts'
import type { NodePayment } from './node-client.ts'
import { toSandboxCaptureBody } from './psp/sandbox.ts'
import { captureIdempotencyKey, type CaptureRequest } from './psp/types.ts'

const actor = 'processor'

/** The capture the payment asks for, or undefined when it asks for none (not requires_capture, none requested). */
export function captureRequestOf (payment: NodePayment): CaptureRequest | undefined {
  const amount = payment.amount_to_capture ?? 0
  if (payment.status !== 'requires_capture' || payment.capture_method !== 'manual' || amount <= 0 || (payment.psp_reference ?? '') === '') return undefined
  return { merchantId: payment.merchant_id, checkoutId: payment.checkout_id, chargeReference: payment.psp_reference!, amount, currency: payment.currency }
}

/** The whole flow for a capture the node has accepted (its event's payment), or the watchdog's re-drive. */
export async function driveCapture (deps: ChargeFlowDeps, payment: NodePayment, by = actor): Promise<NodePayment> {
  const request = captureRequestOf(payment)
  // The event always carries a requested capture; anything else is nothing to do here.
  if (request === undefined) return payment
  const log = deps.log.child({ checkout_id: payment.checkout_id, psp_reference: request.chargeReference })
  const psp = pspOf(deps, payment.psp_provider)
  const call = await callPspWithRetries(deps, {
    provider: psp.name, merchantId: payment.merchant_id, checkoutId: payment.checkout_id, idempotencyKey: captureIdempotencyKey(payment.merchant_id, payment.checkout_id), request: toSandboxCaptureBody(request),
    outcomePrefix: 'capture_', logFields: { checkout_id: payment.checkout_id, psp_reference: request.chargeReference },
    failedMessage: 'psp capture attempt failed', call: () => psp.capture(request),
  })
  if (call.outcome.kind === 'captured') {
    log.info({ amount_captured: call.outcome.amountCaptured }, 'captured at the psp')
    return applyTransition(deps, payment, { to: 'succeeded', actor: by, pspReference: call.outcome.pspReference })
  }
  // Not capturable: the authorization expired (voided by the PSP) just before, or something we do
  // not understand. The charge itself says which; its state is applied (canceled, or a capture of
  // the amount asked for), anything else flagged.
  const found = await psp.findCharge(chargeRequestOf(payment))
  log.warn({ detail: call.outcome.detail, psp: found?.kind }, 'psp refused the capture; applying the charge as it is')
  if (found === undefined || found.kind === 'requires_capture' || found.kind === 'pending' || found.kind === 'requires_action') {
    await deps.flag(payment, `capture refused by the psp (${call.outcome.detail}), its charge is ${found?.kind ?? 'missing'}`)
    return payment
  }
  return applyOutcome(deps, payment, found, by)
}
