// The sandbox PSP adapter: a pure mapping between our types and the sandbox's wire format.
// Stateless; the HTTP call lives in psp-client.ts and the state machine in the core.

import type { CancelOutcome, CaptureOutcome, CaptureRequest, ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest } from './types.ts'
import { PspError } from './types.ts'

export const sandboxProvider = 'sandbox'

export interface SandboxCharge {
  id: string
  status: string
  amount: number
  currency: string
  reference?: string
  merchant_id?: string
  failure_code?: string
  failure_message?: string
  /** Stripe's shape, while requires_action: where the customer approves or declines. */
  next_action?: { type?: string, redirect_to_url?: { url?: string } }
  /** Manual capture: 'manual' on a charge made with capture false; what its capture took. */
  capture_method?: string
  amount_captured?: number
}

export function toSandboxChargeBody (request: ChargeRequest): Record<string, unknown> {
  return {
    amount: request.amount,
    currency: request.currency,
    payment_method: request.paymentMethod,
    reference: request.checkoutId,
    merchant_id: request.merchantId,
    description: request.description,
    // Stripe's parameter: authorize only. Sent only for manual capture (the usual body unchanged).
    ...(request.manualCapture === true ? { capture: false } : {}),
  }
}

/** Maps a charge object; checks it against what we asked for before believing it. */
export function outcomeOfSandboxCharge (charge: SandboxCharge, request: ChargeRequest): ChargeOutcome {
  const pspReference = typeof charge.id === 'string' ? charge.id : ''
  if (pspReference === '') throw new PspError('psp_bad_response', 'charge without id')
  if (charge.amount !== request.amount || charge.currency !== request.currency) {
    return {
      kind: 'flagged',
      pspReference,
      reason: `psp charged ${charge.amount} ${charge.currency}, we asked ${request.amount} ${request.currency}`,
    }
  }
  if (charge.reference !== undefined && charge.reference !== request.checkoutId) {
    return { kind: 'flagged', pspReference, reason: `psp charge reference ${charge.reference} is not ${request.checkoutId}` }
  }
  // Another merchant's charge of the same checkout id is another payment's: never believed for this one.
  if (charge.merchant_id !== undefined && charge.merchant_id !== request.merchantId) {
    return { kind: 'flagged', pspReference, reason: `psp charge of merchant ${charge.merchant_id}, not ${request.merchantId}` }
  }
  const manual = request.manualCapture === true
  if (manual !== (charge.capture_method === 'manual')) {
    // An authorization we did not ask for, or a capture we did not make: never believed.
    return { kind: 'flagged', pspReference, reason: `psp charge capture method ${String(charge.capture_method ?? 'automatic')}, we asked ${manual ? 'manual' : 'automatic'}` }
  }
  switch (charge.status) {
    case 'succeeded': {
      if (!manual) return { kind: 'succeeded', pspReference }
      const captured = charge.amount_captured
      if (typeof captured !== 'number' || !Number.isSafeInteger(captured) || captured <= 0 || captured > request.amount) {
        return { kind: 'flagged', pspReference, reason: `psp capture of ${String(captured)} is not within the authorized ${request.amount}` }
      }
      return { kind: 'succeeded', pspReference, amountCaptured: captured }
    }
    case 'requires_capture':
      return manual ? { kind: 'requires_capture', pspReference } : { kind: 'flagged', pspReference, reason: 'psp authorized an automatic charge without capturing it' }
    case 'canceled': return {
      kind: 'canceled',
      pspReference,
      failureCode: charge.failure_code ?? 'psp_canceled',
      failureMessage: charge.failure_message ?? '',
    }
    case 'failed': return {
      kind: 'failed',
      pspReference,
      failureCode: charge.failure_code ?? 'psp_declined',
      failureMessage: charge.failure_message ?? '',
    }
    case 'pending': return { kind: 'pending', pspReference }
    case 'requires_action': {
      const url = charge.next_action?.type === 'redirect_to_url' ? charge.next_action.redirect_to_url?.url : undefined
      return typeof url === 'string' && url !== '' ? { kind: 'requires_action', pspReference, nextActionUrl: url } : { kind: 'requires_action', pspReference }
    }
    // An unknown status is never success: pending plus an alert.
    default: return { kind: 'flagged', pspReference, reason: `unknown psp status ${JSON.stringify(charge.status)}` }
  }
}

/** Maps an HTTP answer to an outcome, or throws a typed error that says whether to retry. */
export function outcomeOfSandboxResponse (httpStatus: number, body: unknown, retryAfter: string | undefined,
  request: ChargeRequest): ChargeOutcome {
  if (httpStatus === 200 || httpStatus === 201) {
    if (typeof body !== 'object' || body === null) throw new PspError('psp_bad_response', 'charge body is not an object', { httpStatus })
    return outcomeOfSandboxCharge(body as SandboxCharge, request)
  }
  throwSandboxError(httpStatus, body, retryAfter)
}

/** A refusal from the sandbox as a typed error that says whether to retry. */
function throwSandboxError (httpStatus: number, body: unknown, retryAfter: string | undefined): never {
  const code = typeof body === 'object' && body !== null ? String((body as any).error?.code ?? '') : ''
  if (httpStatus === 429) {
    const retryAfterMs = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined
    // Refused at the door, before any processing: nothing charged (issue #16's failover evidence).
    throw new PspError('psp_rate_limited', 'rate limited', { httpStatus, notReceived: true, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) })
  }
  if (httpStatus === 409) throw new PspError('psp_in_progress', `a request with this key is in progress (${code})`, { httpStatus })
  if (httpStatus === 422 && code === 'idempotency_key_mismatch') {
    throw new PspError('psp_idempotency_mismatch', 'the PSP has this key with other parameters', { httpStatus })
  }
  if (httpStatus === 401 || httpStatus === 403) throw new PspError('psp_auth', `refused our credentials (${code})`, { httpStatus })
  if (httpStatus >= 500) throw new PspError('psp_unavailable', `answered ${httpStatus} (${code})`, { httpStatus })
  throw new PspError('psp_rejected', `answered ${httpStatus} (${code})`, { httpStatus })
}

/** Maps the answer to POST /v1/charges/{id}/cancel, or throws a typed error that says whether to retry. */
export function cancelOutcomeOfSandboxResponse (httpStatus: number, body: unknown, retryAfter: string | undefined,
  pspReference: string): CancelOutcome {
  if (httpStatus === 200) {
    const charge = body as SandboxCharge | undefined
    if (typeof charge !== 'object' || charge === null || charge.id !== pspReference) {
      throw new PspError('psp_bad_response', 'cancel answered another object than the charge', { httpStatus })
    }
    if (charge.status !== 'canceled') throw new PspError('psp_bad_response', `cancel answered a ${String(charge.status)} charge`, { httpStatus })
    return { kind: 'canceled' }
  }
  const error = typeof body === 'object' && body !== null ? (body as any).error : undefined
  if (httpStatus === 400 && error?.code === 'charge_not_cancelable') {
    return { kind: 'not_cancelable', detail: String(error.message ?? '').slice(0, 200) }
  }
  // The rest means what it means for a charge (429, 409 in progress, 5xx retriable; the others not).
  throwSandboxError(httpStatus, body, retryAfter)
}

export interface SandboxRefund {
  id: string
  status: string
  amount: number
  currency: string
  charge?: string
  reference?: string
  merchant_id?: string
  failure_code?: string
  failure_message?: string
}

/** POST /v1/refunds: our refund id travels as the refund's `reference` (its webhooks name it). */
export function toSandboxRefundBody (request: RefundRequest): Record<string, unknown> {
  return { charge: request.chargeReference, amount: request.amount, reference: request.refundId }
}

/** Maps a refund object; checks it against what we asked for before believing it. */
export function outcomeOfSandboxRefund (refund: SandboxRefund, request: RefundRequest): RefundOutcome {
  const pspReference = typeof refund.id === 'string' ? refund.id : ''
  if (pspReference === '') throw new PspError('psp_bad_response', 'refund without id')
  if (refund.amount !== request.amount || refund.currency !== request.currency) {
    return { kind: 'flagged', pspReference, reason: `psp refunded ${refund.amount} ${refund.currency}, we asked ${request.amount} ${request.currency}` }
  }
  if (refund.reference !== request.refundId || (refund.charge !== undefined && refund.charge !== request.chargeReference)) {
    return { kind: 'flagged', pspReference, reason: `psp refund ${pspReference} is not our refund ${request.refundId} of ${request.chargeReference}` }
  }
  switch (refund.status) {
    case 'succeeded': return { kind: 'succeeded', pspReference }
    case 'failed': return { kind: 'failed', pspReference, failureCode: refund.failure_code ?? 'psp_refund_failed', failureMessage: refund.failure_message ?? '' }
    case 'pending': return { kind: 'pending', pspReference }
    default: return { kind: 'flagged', pspReference, reason: `unknown psp refund status ${JSON.stringify(refund.status)}` }
  }
}

/** Maps the answer to POST /v1/refunds, or throws a typed error that says whether to retry. */
export function refundOutcomeOfSandboxResponse (httpStatus: number, body: unknown, retryAfter: string | undefined,
  request: RefundRequest): RefundOutcome {
  if (httpStatus === 200 || httpStatus === 201) {
    if (typeof body !== 'object' || body === null) throw new PspError('psp_bad_response', 'refund body is not an object', { httpStatus })
    return outcomeOfSandboxRefund(body as SandboxRefund, request)
  }
  // 400 charge_not_refundable / refund_amount_too_large: psp_rejected (nothing was refunded).
  throwSandboxError(httpStatus, body, retryAfter)
}

/** POST /v1/charges/{id}/capture: the amount to capture (Stripe's Charges API parameter). */
export function toSandboxCaptureBody (request: CaptureRequest): Record<string, unknown> {
  return { amount: request.amount }
}

/** Maps the answer to POST /v1/charges/{id}/capture, or throws a typed error that says whether to retry. */
export function captureOutcomeOfSandboxResponse (httpStatus: number, body: unknown, retryAfter: string | undefined,
  request: CaptureRequest): CaptureOutcome {
  if (httpStatus === 200) {
    const charge = body as SandboxCharge | undefined
    if (typeof charge !== 'object' || charge === null || charge.id !== request.chargeReference) {
      throw new PspError('psp_bad_response', 'capture answered another object than the charge', { httpStatus })
    }
    if (charge.status !== 'succeeded' || charge.currency !== request.currency || charge.amount_captured !== request.amount) {
      throw new PspError('psp_bad_response', `capture answered a ${String(charge.status)} charge of ${String(charge.amount_captured)} ${String(charge.currency)}`, { httpStatus })
    }
    return { kind: 'captured', pspReference: charge.id, amountCaptured: charge.amount_captured }
  }
  const error = typeof body === 'object' && body !== null ? (body as any).error : undefined
  if (httpStatus === 400 && (error?.code === 'charge_not_capturable' || error?.code === 'charge_already_captured')) {
    return { kind: 'not_capturable', detail: String(error.message ?? error.code).slice(0, 200) }
  }
  throwSandboxError(httpStatus, body, retryAfter)
}
