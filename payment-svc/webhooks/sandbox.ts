// The sandbox PSP's webhook events, mapped to what the node understands. Pure; one module per PSP.

import type { PaymentStatus, RefundStatus } from '../../lib/payment-codec.ts'
import { ProblemError } from '../errors.ts'
import { isValidMerchantId } from '../../lib/payment-id.ts'
import { isAcceptableNextActionUrl } from '../next-action.ts'

export interface ParsedWebhook {
  pspEventId: string
  type: string
  /** The status this event asks for; undefined when it is informational. */
  target: PaymentStatus | undefined
  reference: string
  /** The merchant whose checkout id `reference` is (the charge's or refund's `merchant_id`). */
  merchantId: string
  pspReference: string
  amount: number
  currency: string
  failureCode: string
  failureMessage: string
  /** A refund event: our refund id (the PSP refund's `reference`) and the status it asks for. */
  refund?: { id: string, target: RefundStatus | undefined }
  /** charge.requires_action: the PSP's page for the customer, when it gives an acceptable one. */
  nextActionUrl?: string
  /** A manual-capture charge's captured minor units (`amount_captured`), when the PSP gives them. */
  amountCaptured?: number
}

const targetByType: Readonly<Record<string, PaymentStatus | undefined>> = {
  'charge.succeeded': 'succeeded',
  'charge.failed': 'failed',
  'charge.requires_action': 'requires_action',
  // Manual capture (issue #14): authorized only; the merchant captures (charge.succeeded, with
  // amount_captured) or cancels (charge.canceled: voided, also when the authorization expired).
  'charge.requires_capture': 'requires_capture',
  // The merchant's cancel, carried out at the PSP by the processor: the payment is canceled first,
  // so this usually only confirms it.
  'charge.canceled': 'canceled',
  'charge.pending': undefined,
}

const refundTargetByType: Readonly<Record<string, RefundStatus | undefined>> = {
  'refund.succeeded': 'succeeded',
  'refund.failed': 'failed',
  'refund.pending': undefined,
}

const eventIdPattern = /^[A-Za-z0-9_-]{1,128}$/

export function parseSandboxWebhook (body: unknown): ParsedWebhook {
  const event = body as Record<string, any>
  if (typeof event?.type === 'string' && Object.hasOwn(refundTargetByType, event.type)) return parseRefundEvent(event)
  const charge = event?.data?.object as Record<string, any> | undefined
  if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || !eventIdPattern.test(event.id) ||
    typeof event.type !== 'string' || !Object.hasOwn(targetByType, event.type) || typeof charge !== 'object' || charge === null ||
    typeof charge.id !== 'string' || typeof charge.reference !== 'string' ||
    typeof charge.merchant_id !== 'string' || !isValidMerchantId(charge.merchant_id) ||
    !Number.isSafeInteger(charge.amount) || typeof charge.currency !== 'string') {
    throw new ProblemError('validation_failed', { detail: 'not a sandbox charge event' })
  }
  return {
    pspEventId: event.id,
    type: event.type,
    target: targetByType[event.type],
    reference: charge.reference,
    merchantId: charge.merchant_id,
    pspReference: charge.id,
    amount: charge.amount,
    currency: charge.currency,
    failureCode: typeof charge.failure_code === 'string' ? charge.failure_code.slice(0, 64) : '',
    failureMessage: typeof charge.failure_message === 'string' ? charge.failure_message.slice(0, 500) : '',
    ...nextActionOf(event.type, charge),
    ...(Number.isSafeInteger(charge.amount_captured) && event.type === 'charge.succeeded' ? { amountCaptured: charge.amount_captured } : {}),
  }
}

/** Stripe's `next_action.redirect_to_url.url` of a charge awaiting the customer; ignored if unacceptable. */
function nextActionOf (type: string, charge: Record<string, any>): { nextActionUrl?: string } {
  if (type !== 'charge.requires_action' || charge.next_action?.type !== 'redirect_to_url') return {}
  const url: unknown = charge.next_action.redirect_to_url?.url
  return typeof url === 'string' && isAcceptableNextActionUrl(url) ? { nextActionUrl: url } : {}
}

/**
 * A refund event: `data.object` is the PSP's refund, `{id, object: "refund", status, amount,
 * currency, charge, reference (our refund id), payment_reference (our checkout id), merchant_id, failure_code?,
 * failure_message?}`.
 */
function parseRefundEvent (event: Record<string, any>): ParsedWebhook {
  const refund = event.data?.object as Record<string, any> | undefined
  if (typeof event.id !== 'string' || !eventIdPattern.test(event.id) || typeof refund !== 'object' || refund === null ||
    typeof refund.id !== 'string' || typeof refund.reference !== 'string' || typeof refund.payment_reference !== 'string' ||
    typeof refund.merchant_id !== 'string' || !isValidMerchantId(refund.merchant_id) ||
    !Number.isSafeInteger(refund.amount) || typeof refund.currency !== 'string') {
    throw new ProblemError('validation_failed', { detail: 'not a sandbox refund event' })
  }
  return {
    pspEventId: event.id,
    type: event.type,
    target: undefined,
    reference: refund.payment_reference,
    merchantId: refund.merchant_id,
    pspReference: refund.id,
    amount: refund.amount,
    currency: refund.currency,
    failureCode: typeof refund.failure_code === 'string' ? refund.failure_code.slice(0, 64) : '',
    failureMessage: typeof refund.failure_message === 'string' ? refund.failure_message.slice(0, 500) : '',
    refund: { id: refund.reference, target: refundTargetByType[event.type] },
  }
}
