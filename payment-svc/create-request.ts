// Validation of `POST /payments` bodies. Returns a typed request or throws one ProblemError that
// lists every bad field, so a client fixes everything in one round trip.

import { hash } from 'node:crypto'
import { currencyExponent } from './currencies.ts'
import { ProblemError, type FieldError } from './errors.ts'
import type { NodeLimits } from './limits.ts'
import { captureMethods, type CaptureMethod } from '../lib/payment-codec.ts'

export interface CreatePaymentRequest {
  /** Integer minor units; a validated safe integer. */
  amount: number
  currency: string
  paymentMethod: string
  description: string
  customerRef: string
  metadata: Record<string, string>
  /** Stripe's capture_method (issue #14): manual = the PSP only authorizes, the merchant captures. */
  captureMethod?: CaptureMethod
}

const checkoutIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const paymentMethodPattern = /^[A-Za-z0-9_-]+$/
const currencyPattern = /^[A-Z]{3}$/
const metadataKeyPattern = /^[A-Za-z0-9_.-]+$/
// C0/C1 control characters other than tab and newline have no place in payment text.
const controlCharPattern = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/
// An unpaired UTF-16 surrogate (legal in JSON's \u escapes) has no UTF-8 form: it would be stored as U+FFFD.
const loneSurrogatePattern = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const allowedFields = new Set(['amount', 'currency', 'payment_method', 'description', 'customer_ref', 'metadata', 'capture_method'])

export function isValidCheckoutId (id: string): boolean {
  return checkoutIdPattern.test(id)
}

export function checkText (errors: FieldError[], field: string, value: unknown, lengthMax: number): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') {
    errors.push({ field, code: 'type', message: `${field} must be a string` })
    return ''
  }
  if (value.length > lengthMax) {
    errors.push({ field, code: 'too_long', message: `${field} must be at most ${lengthMax} characters` })
  } else if (controlCharPattern.test(value)) {
    errors.push({ field, code: 'control_characters', message: `${field} must not contain control characters` })
  } else if (loneSurrogatePattern.test(value)) {
    errors.push({ field, code: 'invalid_unicode', message: `${field} must not contain unpaired surrogates` })
  }
  return value
}

/**
 * A request body as an object of fields, with an error for each field not in `allowed`; a body
 * that is not a JSON object is refused whole.
 */
export function bodyFields (body: unknown, allowed: ReadonlySet<string>): { input: Record<string, unknown>, errors: FieldError[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProblemError('validation_failed', { detail: 'Body must be a JSON object' })
  }
  const input = body as Record<string, unknown>
  const errors: FieldError[] = []
  for (const key of Object.keys(input)) {
    if (!allowed.has(key)) errors.push({ field: key, code: 'unknown_field', message: `Unknown field ${key}` })
  }
  return { input, errors }
}

export function parseCreatePayment (body: unknown, limits: NodeLimits): CreatePaymentRequest {
  const { input, errors } = bodyFields(body, allowedFields)

  const amount = input.amount
  if (amount === undefined) {
    errors.push({ field: 'amount', code: 'required', message: 'amount is required' })
  } else if (typeof amount !== 'number' || !Number.isSafeInteger(amount)) {
    errors.push({ field: 'amount', code: 'type', message: 'amount must be an integer in minor units' })
  } else if (amount <= 0 || amount > limits.amountMinorMax) {
    errors.push({ field: 'amount', code: 'out_of_range', message: `amount must be within 1..${limits.amountMinorMax}` })
  }

  const currency = input.currency
  if (currency === undefined) {
    errors.push({ field: 'currency', code: 'required', message: 'currency is required' })
  } else if (typeof currency !== 'string' || !currencyPattern.test(currency)) {
    errors.push({ field: 'currency', code: 'format', message: 'currency must be an upper-case ISO 4217 code' })
  } else if (currencyExponent(currency) === undefined) {
    errors.push({ field: 'currency', code: 'unsupported', message: `currency ${currency} is not supported` })
  }

  const paymentMethod = input.payment_method
  if (paymentMethod === undefined) {
    errors.push({ field: 'payment_method', code: 'required', message: 'payment_method is required' })
  } else if (typeof paymentMethod !== 'string' || paymentMethod.length === 0 ||
    paymentMethod.length > limits.paymentMethodLengthMax || !paymentMethodPattern.test(paymentMethod)) {
    errors.push({
      field: 'payment_method',
      code: 'format',
      message: `payment_method must be a PSP token of 1..${limits.paymentMethodLengthMax} [A-Za-z0-9_-]`,
    })
  }

  const description = checkText(errors, 'description', input.description, limits.descriptionLengthMax)
  const customerRef = checkText(errors, 'customer_ref', input.customer_ref, limits.customerRefLengthMax)
  const metadata = parseMetadata(errors, input.metadata, limits)
  const captureMethod = input.capture_method ?? 'automatic'
  if (typeof captureMethod !== 'string' || !(captureMethods as readonly string[]).includes(captureMethod)) {
    errors.push({ field: 'capture_method', code: 'format', message: `capture_method must be one of ${captureMethods.join(', ')}` })
  }

  if (errors.length > 0) throw new ProblemError('validation_failed', { errors })
  return {
    amount: amount as number,
    currency: currency as string,
    paymentMethod: paymentMethod as string,
    description,
    customerRef,
    metadata,
    captureMethod: captureMethod as CaptureMethod,
  }
}

function parseMetadata (errors: FieldError[], value: unknown, limits: NodeLimits): Record<string, string> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    errors.push({ field: 'metadata', code: 'type', message: 'metadata must be an object of strings' })
    return {}
  }
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > limits.metadataKeysMax) {
    errors.push({ field: 'metadata', code: 'too_many_keys', message: `metadata holds at most ${limits.metadataKeysMax} keys` })
    return {}
  }
  const metadata: Record<string, string> = {}
  for (const [key, entry] of entries) {
    const field = `metadata.${key.slice(0, limits.metadataKeyLengthMax)}`
    // `__proto__` matches the pattern, but assigning it sets the prototype: the entry would vanish.
    if (key.length === 0 || key.length > limits.metadataKeyLengthMax || !metadataKeyPattern.test(key) || key === '__proto__') {
      errors.push({ field, code: 'key_format', message: `metadata keys are 1..${limits.metadataKeyLengthMax} of [A-Za-z0-9_.-], not __proto__` })
      continue
    }
    metadata[key] = checkText(errors, field, entry, limits.metadataValueLengthMax)
  }
  return metadata
}

/**
 * SHA-256 over a canonical form of everything that defines the payment, merchant included, so an
 * idempotent replay must be the same request, not merely one with the same checkout id.
 */
export function hashCreateRequest (merchantId: string, request: CreatePaymentRequest): Uint8Array {
  const metadataKeys = Object.keys(request.metadata).sort()
  const canonical = JSON.stringify([
    merchantId, request.amount, request.currency, request.paymentMethod, request.description,
    request.customerRef, metadataKeys.map((key) => [key, request.metadata[key]]),
    // Only when manual: an automatic payment's hash is what it was before capture_method existed.
    ...(request.captureMethod === 'manual' ? ['manual'] : []),
  ])
  return hash('sha256', canonical, 'buffer')
}
