// Expiry of payments nobody completes (issue #14): one left at `requires_action` (the customer
// never came back to the PSP's page) or at `pending` (never charged) past its limit is canceled,
// at the PSP first and then on its node. A charge the PSP did take always wins over the expiry:
// the watchdog applies it instead. The limits are long (processor/limits.ts, a day by default) so
// that an outage of hours never cancels a payment a customer completed meanwhile.

import { callPspWithRetries, chargeRequestOf, applyOutcome, pspOf, type ChargeFlowDeps } from './charge-flow.ts'
import { NodeError, type NodePayment } from './node-client.ts'

export const expiredFailureCode = 'expired'
/** An authorization voided because it was not captured within its window (the sandbox PSP says the same). */
export const authorizationExpiredFailureCode = 'authorization_expired'
const expiryActor = 'expiry'

export type ExpiryResult =
  /** Canceled on its node now (or already: someone canceled it first). */
  | 'expired'
  /** The PSP's charge was final: applied instead (the customer completed it after all). */
  | 'charge_applied'
  /** Someone moved the payment meanwhile (the processor's claim, a webhook): left for the next round. */
  | 'moved_on'

/** The payment's age by its creation time on its node. */
export function paymentAgeMs (payment: NodePayment, nowMs: number): number {
  const createdAtMs = Date.parse(payment.created_at ?? '')
  return Number.isFinite(createdAtMs) ? nowMs - createdAtMs : 0
}

/**
 * A `requires_action` payment past its expiry: the PSP's charge is canceled first, so the customer
 * can no longer complete it, then the payment. If the PSP refuses (the charge left
 * requires_action: the customer approved or declined just now), its final state is applied.
 */
export async function expireAwaitingCustomer (deps: ChargeFlowDeps, payment: NodePayment): Promise<ExpiryResult> {
  const pspReference = payment.psp_reference ?? ''
  const log = deps.log.child({ checkout_id: payment.checkout_id, psp_reference: pspReference })
  if (pspReference !== '') {
    const psp = pspOf(deps, payment.psp_provider)
    const call = await callPspWithRetries(deps, {
      provider: psp.name, merchantId: payment.merchant_id, checkoutId: payment.checkout_id, request: { cancel: pspReference }, outcomePrefix: 'cancel_',
      logFields: { checkout_id: payment.checkout_id, psp_reference: pspReference }, failedMessage: 'psp cancel attempt failed (expiry)',
      call: () => psp.cancelCharge(pspReference),
    })
    if (call.outcome.kind === 'not_cancelable') {
      const found = await psp.findCharge(chargeRequestOf(payment))
      if (found !== undefined && found.kind !== 'pending' && found.kind !== 'requires_action') {
        log.warn({ psp: found.kind }, 'expiry: the customer completed the charge first; applying it')
        await applyOutcome(deps, payment, found, expiryActor)
        return 'charge_applied'
      }
      // Not cancelable and not final: a PSP we do not understand. Leave it to a person.
      await deps.flag(payment, `expired at requires_action, but the psp charge ${pspReference} could not be canceled (${found?.kind ?? 'missing'})`)
      return 'moved_on'
    }
  }
  return cancelOnNode(deps, payment, 'The customer did not complete the payment in time')
}

/**
 * A `requires_capture` payment past its capture window, no capture asked for: the backstop for the
 * PSP's own expiry, whose `charge.canceled` webhook may be lost. The charge is looked up first:
 * canceled there (the PSP voided it) is applied; still authorized, it is voided at the PSP and then
 * canceled on its node (version-checked: a capture asked for meanwhile wins, and the next round
 * re-drives it); a capture we did not ask for, or anything else, is flagged.
 */
export async function expireAuthorization (deps: ChargeFlowDeps, payment: NodePayment): Promise<ExpiryResult> {
  const pspReference = payment.psp_reference ?? ''
  const psp = pspOf(deps, payment.psp_provider)
  const found = await psp.findCharge(chargeRequestOf(payment))
  if (found?.kind === 'canceled') {
    deps.log.warn({ checkout_id: payment.checkout_id, psp_reference: pspReference }, 'expiry: the psp voided the authorization; applying it')
    await applyOutcome(deps, payment, found, expiryActor)
    return 'charge_applied'
  }
  if (found?.kind !== 'requires_capture' || pspReference === '') {
    await deps.flag(payment, `authorization past its capture window, but the psp charge ${pspReference} is ${found?.kind ?? 'missing'}`)
    return 'moved_on'
  }
  const call = await callPspWithRetries(deps, {
    provider: psp.name, merchantId: payment.merchant_id, checkoutId: payment.checkout_id, request: { cancel: pspReference }, outcomePrefix: 'cancel_',
    logFields: { checkout_id: payment.checkout_id, psp_reference: pspReference }, failedMessage: 'psp void attempt failed (expiry)',
    call: () => psp.cancelCharge(pspReference),
  })
  if (call.outcome.kind === 'not_cancelable') {
    await deps.flag(payment, `authorization past its capture window could not be voided at the psp (${call.outcome.detail})`)
    return 'moved_on'
  }
  return cancelOnNode(deps, payment, 'The authorization was not captured in time', authorizationExpiredFailureCode)
}

/** A `pending` payment past its expiry that the PSP has no charge for (the caller looked). */
export function expireNeverCharged (deps: ChargeFlowDeps, payment: NodePayment): Promise<ExpiryResult> {
  return cancelOnNode(deps, payment, 'The payment was not processed in time')
}

/** Version-checked: a claim or webhook that lands first wins, and the expiry waits for the next round. */
async function cancelOnNode (deps: ChargeFlowDeps, payment: NodePayment, message: string, failureCode = expiredFailureCode): Promise<ExpiryResult> {
  try {
    await deps.node.transition(payment, {
      to: 'canceled', expectedVersion: payment.version, actor: expiryActor, failureCode, failureMessage: message,
    })
    deps.log.warn({ checkout_id: payment.checkout_id, status: payment.status }, 'payment expired: canceled')
    return 'expired'
  } catch (error) {
    if (error instanceof NodeError && (error.code === 'stale_version' || error.code === 'invalid_transition')) return 'moved_on'
    throw error
  }
}
