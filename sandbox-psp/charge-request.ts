// Validation of POST /v1/charges: the body and the Idempotency-Key header. Errors name the
// offending parameter (`param`), as a real PSP's do.

import type { IncomingMessage } from 'node:http'
import type { ChargeParams } from './charge.ts'
import { PspError } from './errors.ts'
import type { PspLimits } from './limits.ts'
import { normaliseCurrency } from './money.ts'
import { ruleFor, type PaymentMethodRule } from './rules.ts'

const knownFields = new Set(['amount', 'currency', 'payment_method', 'reference', 'merchant_id', 'description', 'capture'])
// Printable ASCII without spaces: references end up in URL paths and CSV cells.
const tokenPattern = /^[\x21-\x7e]+$/
const printablePattern = /^[\x20-\x7e]+$/

function requiredString (body: Record<string, unknown>, field: string, lengthMax: number, pattern: RegExp): string {
  const value = body[field]
  if (value === undefined || value === null || value === '') {
    throw new PspError('parameter_missing', { param: field, message: `Missing required param: ${field}` })
  }
  if (typeof value !== 'string' || value.length > lengthMax || !pattern.test(value)) {
    throw new PspError('parameter_invalid', { param: field, message: `${field} must be a string of 1..${lengthMax} printable ASCII characters` })
  }
  return value
}

export function readIdempotencyKey (req: IncomingMessage, limits: PspLimits): string {
  const header = req.headers['idempotency-key']
  const key = Array.isArray(header) ? header[0] : header
  if (key === undefined || key === '') throw new PspError('idempotency_key_missing')
  if (key.length > limits.idempotencyKeyLengthMax || !printablePattern.test(key)) {
    throw new PspError('parameter_invalid', {
      param: 'Idempotency-Key',
      message: `Idempotency-Key must be 1..${limits.idempotencyKeyLengthMax} printable ASCII characters`,
    })
  }
  return key
}

export function parseChargeRequest (body: Record<string, unknown>, limits: PspLimits): { params: ChargeParams, rule: PaymentMethodRule } {
  for (const field of Object.keys(body)) {
    if (!knownFields.has(field)) throw new PspError('parameter_unknown', { param: field, message: `Received unknown parameter: ${field}` })
  }
  const amount = body.amount
  if (amount === undefined || amount === null) throw new PspError('parameter_missing', { param: 'amount', message: 'Missing required param: amount' })
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0 || amount > limits.amountMinorMax) {
    throw new PspError('amount_invalid', { param: 'amount', message: `amount must be an integer in minor units within 1..${limits.amountMinorMax}` })
  }
  const currencyRaw = body.currency
  if (currencyRaw === undefined || currencyRaw === null || currencyRaw === '') {
    throw new PspError('parameter_missing', { param: 'currency', message: 'Missing required param: currency' })
  }
  const currency = typeof currencyRaw === 'string' ? normaliseCurrency(currencyRaw) : undefined
  if (currency === undefined) throw new PspError('currency_invalid', { param: 'currency', message: `Invalid currency: ${String(currencyRaw).slice(0, 16)}` })
  const paymentMethod = requiredString(body, 'payment_method', limits.paymentMethodLengthMax, tokenPattern)
  const rule = ruleFor(paymentMethod)
  if (rule === undefined) {
    throw new PspError('invalid_payment_method', { param: 'payment_method', message: `No such payment method: '${paymentMethod}'` })
  }
  const params: ChargeParams = {
    amount,
    currency,
    payment_method: paymentMethod,
    reference: requiredString(body, 'reference', limits.referenceLengthMax, tokenPattern),
    merchant_id: requiredString(body, 'merchant_id', limits.merchantIdLengthMax, tokenPattern),
  }
  const description = body.description
  if (description !== undefined && description !== null) {
    if (typeof description !== 'string' || description.length > limits.descriptionLengthMax) {
      throw new PspError('parameter_invalid', { param: 'description', message: `description must be a string of at most ${limits.descriptionLengthMax} characters` })
    }
    params.description = description
  }
  // Stripe's `capture`: false authorizes only (manual capture); true (or absent) is the usual charge.
  const capture = body.capture
  if (capture !== undefined && capture !== null) {
    if (typeof capture !== 'boolean') throw new PspError('parameter_invalid', { param: 'capture', message: 'capture must be a boolean' })
    if (!capture) params.capture = false
  }
  return { params, rule }
}
