// Manual capture (issue #14, Stripe's `capture_method: "manual"`), as pure functions over the
// payment record. The PSP only authorizes a manual payment (`requires_capture`); the merchant's
// capture (POST /payments/{id}/capture) records `amount_to_capture` on the payment at its next
// version with a `payment.capture_requested` change event; the processor captures at the PSP and
// moves the payment to `succeeded`, which sets `amount_captured` (never more than authorized; a
// partial capture releases the rest at the PSP). Like a refund, the capture is a payment write:
// serialised per checkout id with the merchant's cancel, so exactly one of the two wins.

import { isManualCapture, type Payment, type PaymentStatus } from '../lib/payment-codec.ts'
import { ProblemError } from './errors.ts'

/**
 * Why the move `current → to` breaks the capture rules ('' when it does not): only a manual
 * payment is authorized without capture; a manual payment succeeds only from `requires_capture`
 * once its capture was asked for, and, when the PSP says what it captured (`pspAmountCaptured`),
 * for exactly that amount. Checked on top of the state machine, for the processor's transitions
 * and the PSP's webhooks alike.
 */
export function captureConflict (current: Payment, to: PaymentStatus, pspAmountCaptured: number | undefined): string {
  if (to === 'requires_capture' && !isManualCapture(current)) return 'only a manual-capture payment waits for a capture'
  if (to !== 'succeeded' || !isManualCapture(current)) return ''
  if (current.status !== 'requires_capture') return `a manual-capture payment succeeds only by its capture, not from ${current.status}`
  const toCapture = current.amountToCapture ?? 0
  if (toCapture === 0) return 'no capture of this payment was asked for'
  if (pspAmountCaptured !== undefined && pspAmountCaptured !== toCapture) {
    return `the PSP captured ${pspAmountCaptured}, the capture asked for ${toCapture}`
  }
  return ''
}

/**
 * Whether a capture request (`amount`: undefined = the whole authorization) may be made now:
 * undefined when it may, 'replay' when it repeats the capture already asked for (pending or
 * done: answered with the payment as it is), or the problem to answer.
 */
export function captureRefusal (current: Payment, amount: number | undefined): ProblemError | 'replay' | undefined {
  const conflict = { current_status: current.status, current_version: current.version }
  if (!isManualCapture(current)) {
    return new ProblemError('payment_not_capturable', { detail: 'only a payment created with capture_method manual is captured', extra: conflict })
  }
  const asked = current.amountToCapture ?? 0
  if (asked > 0 && (current.status === 'requires_capture' || current.status === 'succeeded')) {
    if (amount === undefined || amount === asked) return 'replay'
    return new ProblemError('payment_not_capturable', {
      detail: `a capture of ${asked} was already asked for`, extra: { ...conflict, amount_to_capture: asked },
    })
  }
  if (current.status !== 'requires_capture') {
    return new ProblemError('payment_not_capturable', { detail: `a ${current.status} payment cannot be captured`, extra: conflict })
  }
  if (amount !== undefined && amount > current.amount) {
    return new ProblemError('capture_amount_exceeds_authorized', {
      detail: `${current.amount} minor units were authorized`, extra: { amount_capturable: current.amount, currency: current.currency },
    })
  }
  return undefined
}

/** The payment with its capture asked for, at its next version (status unchanged: requires_capture). */
export function withCaptureRequested (current: Payment, amount: number, nowMs: number): Payment {
  return { ...current, amountToCapture: amount, version: current.version + 1, updatedAtMs: nowMs }
}

/** What of the authorization can still be captured: all of it until a capture is asked for. */
export function amountCapturable (payment: Payment): number {
  return payment.status === 'requires_capture' && (payment.amountToCapture ?? 0) === 0 ? payment.amount : 0
}
