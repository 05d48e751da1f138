// The sandbox PSP's webhook events, mapped to what the node understands. Pure; one module per PSP.

import type { PaymentStatus } from '../../lib/payment-codec.ts'
import { ProblemError } from '../errors.ts'

export interface ParsedWebhook {
  pspEventId: string
  type: string
  /** The status this event asks for; undefined when it is informational. */
  target: PaymentStatus | undefined
  reference: string
  pspReference: string
  amount: number
  currency: string
  failureCode: string
  failureMessage: string
}

const targetByType: Readonly<Record<string, PaymentStatus | undefined>> = {
  'charge.succeeded': 'succeeded',
  'charge.failed': 'failed',
  'charge.requires_action': 'requires_action',
  // The merchant's cancel, carried out at the PSP by the processor: the payment is canceled first,
  // so this usually only confirms it.
  'charge.canceled': 'canceled',
  'charge.pending': undefined,
}

const eventIdPattern = /^[A-Za-z0-9_-]{1,128}$/

export function parseSandboxWebhook (body: unknown): ParsedWebhook {
  const event = body as Record<string, any>
  const charge = event?.data?.object as Record<string, any> | undefined
  if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || !eventIdPattern.test(event.id) ||
    typeof event.type !== 'string' || !Object.hasOwn(targetByType, event.type) || typeof charge !== 'object' || charge === null ||
    typeof charge.id !== 'string' || typeof charge.reference !== 'string' ||
    !Number.isSafeInteger(charge.amount) || typeof charge.currency !== 'string') {
    throw new ProblemError('validation_failed', { detail: 'not a sandbox charge event' })
  }
  return {
    pspEventId: event.id,
    type: event.type,
    target: targetByType[event.type],
    reference: charge.reference,
    pspReference: charge.id,
    amount: charge.amount,
    currency: charge.currency,
    failureCode: typeof charge.failure_code === 'string' ? charge.failure_code.slice(0, 64) : '',
    failureMessage: typeof charge.failure_message === 'string' ? charge.failure_message.slice(0, 500) : '',
  }
}
