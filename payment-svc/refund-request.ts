// Validation of `POST /payments/{id}/refunds` (issue #14): the `Idempotency-Key` header and the
// body `{amount?, reason?}`. Returns a typed request or throws one ProblemError that lists every
// bad field, like a create.

import { hash } from 'node:crypto'
import { bodyFields, checkText } from './create-request.ts'
import { ProblemError, type FieldError } from './errors.ts'
import type { NodeLimits } from './limits.ts'

export interface RefundRequest {
  /** Integer minor units; undefined: what remains of the payment. */
  amount: number | undefined
  reason: string
}

// Printable ASCII without spaces: what merchants send (UUIDs, order ids); stored and logged.
const idempotencyKeyPattern = /^[\x21-\x7e]+$/
const allowedFields = new Set(['amount', 'reason'])

/** The `Idempotency-Key` header: required, 1..refundIdempotencyKeyLengthMax printable ASCII. */
export function idempotencyKeyFrom (header: string | string[] | undefined, limits: NodeLimits): string {
  if (header === undefined || header === '') {
    throw new ProblemError('idempotency_key_missing', { detail: 'send an Idempotency-Key header with every refund' })
  }
  if (Array.isArray(header) || header.length > limits.refundIdempotencyKeyLengthMax || !idempotencyKeyPattern.test(header)) {
    throw new ProblemError('idempotency_key_missing', {
      detail: `Idempotency-Key must be sent once, 1..${limits.refundIdempotencyKeyLengthMax} printable ASCII characters without spaces`,
    })
  }
  return header
}

/** An optional `amount` (a refund's or a capture's): integer minor units within 1..amountMinorMax. */
function optionalAmount (amount: unknown, errors: FieldError[], limits: NodeLimits): number | undefined {
  if (amount === undefined) return undefined
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
    errors.push({ field: 'amount', code: 'type', message: 'amount must be an integer in minor units' })
  } else if (amount <= 0 || amount > limits.amountMinorMax) {
    errors.push({ field: 'amount', code: 'out_of_range', message: `amount must be within 1..${limits.amountMinorMax}` })
  }
  return amount as number
}

export function parseRefundRequest (body: unknown, limits: NodeLimits): RefundRequest {
  const { input, errors } = bodyFields(body, allowedFields)
  const amount = optionalAmount(input.amount, errors, limits)
  const reason = checkText(errors, 'reason', input.reason, limits.refundReasonLengthMax)
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  return { amount, reason }
}

/**
 * SHA-256 of the request as sent (an omitted amount stays omitted: "the rest" asked twice is the
 * same request even after other refunds changed what the rest is).
 */
export function hashRefundRequest (request: RefundRequest): Uint8Array {
  return hash('sha256', JSON.stringify([request.amount ?? null, request.reason]), 'buffer')
}

const captureFields = new Set(['amount'])

/** `POST /payments/{id}/capture` `{amount?}`: integer minor units; undefined captures the whole authorization. */
export function parseCaptureRequest (body: unknown, limits: NodeLimits): { amount: number | undefined } {
  const { input, errors } = bodyFields(body, captureFields)
  const amount = optionalAmount(input.amount, errors, limits)
  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  return { amount }
}
