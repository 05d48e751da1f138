// The Nimbus PSP adapter (issue #16): a pure mapping between our types and Nimbus' wire format
// (Adyen-like: amounts as {value, currency}, merchantReference/pspReference, an asynchronous
// authorisation whose outcome comes by notification). Stateless; HTTP in nimbus-client.ts.

import type { CancelOutcome, ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest } from './types.ts'
import { PspError } from './types.ts'

export const nimbusProvider = 'nimbus'

export interface NimbusPayment {
  pspReference: string
  merchantReference?: string
  amount?: { value?: number, currency?: string }
  status?: string
  refusalReason?: string
}

export interface NimbusRefund {
  pspReference: string
  paymentPspReference?: string
  reference?: string
  amount?: { value?: number, currency?: string }
  status?: string
}

/**
 * A payment at Nimbus is made under the merchant's own merchant account (our merchant id, one
 * account per merchant of the platform), with our checkout id as its merchantReference: the pair
 * is the payment (#17 part 5), and the notification items name both under their HMAC.
 */
export function toNimbusPaymentBody (request: ChargeRequest): Record<string, unknown> {
  return {
    merchantAccount: request.merchantId,
    amount: { value: request.amount, currency: request.currency },
    reference: request.checkoutId,
    paymentMethod: { type: 'scheme', storedPaymentMethodId: request.paymentMethod },
    ...(request.description !== '' ? { shopperStatement: request.description } : {}),
  }
}

export function toNimbusRefundBody (request: RefundRequest): Record<string, unknown> {
  return { amount: { value: request.amount, currency: request.currency }, reference: request.refundId }
}

/** A refusal as a typed error that says whether to retry (and whether Nimbus never processed it). */
export function throwNimbusError (httpStatus: number, body: unknown, retryAfter: string | undefined): never {
  const code = typeof body === 'object' && body !== null ? String((body as any).errorCode ?? '') : ''
  if (httpStatus === 429) {
    const retryAfterMs = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined
    throw new PspError('psp_rate_limited', 'rate limited', { httpStatus, notReceived: true, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) })
  }
  if (httpStatus === 409) throw new PspError('psp_in_progress', `a request with this key is in progress (${code})`, { httpStatus })
  if (httpStatus === 422 && code === 'idempotency_mismatch') throw new PspError('psp_idempotency_mismatch', 'nimbus has this key with other parameters', { httpStatus })
  if (httpStatus === 401 || httpStatus === 403) throw new PspError('psp_auth', `refused our credentials (${code})`, { httpStatus })
  if (httpStatus >= 500) throw new PspError('psp_unavailable', `answered ${httpStatus} (${code})`, { httpStatus })
  throw new PspError('psp_rejected', `answered ${httpStatus} (${code})`, { httpStatus })
}

/** The answer to POST /v1/payments: received (pending, a notification follows) or a redirect. */
export function outcomeOfNimbusPaymentResponse (httpStatus: number, body: unknown, retryAfter: string | undefined, request: ChargeRequest): ChargeOutcome {
  if (httpStatus !== 200) throwNimbusError(httpStatus, body, retryAfter)
  const answer = body as { pspReference?: unknown, resultCode?: unknown, merchantReference?: unknown, action?: { url?: unknown } } | undefined
  if (typeof answer !== 'object' || answer === null || typeof answer.pspReference !== 'string' || answer.pspReference === '') {
    throw new PspError('psp_bad_response', 'payment answer without pspReference', { httpStatus })
  }
  const pspReference = answer.pspReference
  if (answer.merchantReference !== request.checkoutId) {
    return { kind: 'flagged', pspReference, reason: `nimbus payment reference ${String(answer.merchantReference)} is not ${request.checkoutId}` }
  }
  if (answer.resultCode === 'Received') return { kind: 'pending', pspReference }
  if (answer.resultCode === 'RedirectShopper') {
    const url = answer.action?.url
    return typeof url === 'string' && url !== '' ? { kind: 'requires_action', pspReference, nextActionUrl: url } : { kind: 'requires_action', pspReference }
  }
  return { kind: 'flagged', pspReference, reason: `unknown nimbus resultCode ${JSON.stringify(answer.resultCode)}` }
}

/** A payment found by its reference; checked against what we asked for before believing it. */
export function outcomeOfNimbusPayment (payment: NimbusPayment, request: ChargeRequest): ChargeOutcome {
  const pspReference = typeof payment.pspReference === 'string' ? payment.pspReference : ''
  if (pspReference === '') throw new PspError('psp_bad_response', 'payment without pspReference')
  if (payment.amount?.value !== request.amount || payment.amount?.currency !== request.currency) {
    return { kind: 'flagged', pspReference, reason: `nimbus holds ${String(payment.amount?.value)} ${String(payment.amount?.currency)}, we asked ${request.amount} ${request.currency}` }
  }
  if (payment.merchantReference !== request.checkoutId) {
    return { kind: 'flagged', pspReference, reason: `nimbus payment reference ${String(payment.merchantReference)} is not ${request.checkoutId}` }
  }
  const [failureCode, ...message] = (payment.refusalReason ?? '').split(': ')
  switch (payment.status) {
    case 'Authorised': return { kind: 'succeeded', pspReference }
    case 'Refused': return { kind: 'failed', pspReference, failureCode: failureCode || 'psp_declined', failureMessage: message.join(': ') }
    case 'Cancelled': return { kind: 'canceled', pspReference, failureCode: failureCode || 'psp_canceled', failureMessage: message.join(': ') }
    case 'Pending': return { kind: 'pending', pspReference }
    case 'RedirectShopper': return { kind: 'requires_action', pspReference }
    default: return { kind: 'flagged', pspReference, reason: `unknown nimbus status ${JSON.stringify(payment.status)}` }
  }
}

export function cancelOutcomeOfNimbusResponse (httpStatus: number, body: unknown, retryAfter: string | undefined, pspReference: string): CancelOutcome {
  if (httpStatus === 200) {
    const answer = body as { paymentPspReference?: unknown, status?: unknown } | undefined
    if (answer?.paymentPspReference !== pspReference || answer.status !== 'cancelled') {
      throw new PspError('psp_bad_response', `cancel answered ${JSON.stringify(answer?.status)} for ${String(answer?.paymentPspReference)}`, { httpStatus })
    }
    return { kind: 'canceled' }
  }
  const code = typeof body === 'object' && body !== null ? (body as any).errorCode : undefined
  if (httpStatus === 422 && code === 'not_cancelable') return { kind: 'not_cancelable', detail: String((body as any).message ?? '').slice(0, 200) }
  throwNimbusError(httpStatus, body, retryAfter)
}

export function refundOutcomeOfNimbusResponse (httpStatus: number, body: unknown, retryAfter: string | undefined, request: RefundRequest): RefundOutcome {
  if (httpStatus !== 201 && httpStatus !== 200) throwNimbusError(httpStatus, body, retryAfter)
  const answer = body as { pspReference?: unknown, paymentPspReference?: unknown, reference?: unknown, status?: unknown } | undefined
  if (typeof answer?.pspReference !== 'string' || answer.pspReference === '') throw new PspError('psp_bad_response', 'refund answer without pspReference', { httpStatus })
  if (answer.reference !== request.refundId || answer.paymentPspReference !== request.chargeReference) {
    return { kind: 'flagged', pspReference: answer.pspReference, reason: `nimbus refund ${answer.pspReference} is not our refund ${request.refundId} of ${request.chargeReference}` }
  }
  // Asynchronous, like its payments: the REFUND notification brings the outcome.
  return { kind: 'pending', pspReference: answer.pspReference }
}

export function outcomeOfNimbusRefund (refund: NimbusRefund, request: RefundRequest): RefundOutcome {
  const pspReference = typeof refund.pspReference === 'string' ? refund.pspReference : ''
  if (pspReference === '') throw new PspError('psp_bad_response', 'refund without pspReference')
  if (refund.amount?.value !== request.amount || refund.amount?.currency !== request.currency) {
    return { kind: 'flagged', pspReference, reason: `nimbus refunded ${String(refund.amount?.value)} ${String(refund.amount?.currency)}, we asked ${request.amount} ${request.currency}` }
  }
  if (refund.reference !== request.refundId || refund.paymentPspReference !== request.chargeReference) {
    return { kind: 'flagged', pspReference, reason: `nimbus refund ${pspReference} is not our refund ${request.refundId} of ${request.chargeReference}` }
  }
  switch (refund.status) {
    case 'Refunded': return { kind: 'succeeded', pspReference }
    case 'Failed': return { kind: 'failed', pspReference, failureCode: 'psp_refund_failed', failureMessage: '' }
    case 'Received': return { kind: 'pending', pspReference }
    default: return { kind: 'flagged', pspReference, reason: `unknown nimbus refund status ${JSON.stringify(refund.status)}` }
  }
}
