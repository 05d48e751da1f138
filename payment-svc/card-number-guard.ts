// Refuses raw card numbers (PANs) anywhere in a request, so none is ever stored or logged: every
// string of a parsed JSON body (keys included, after JSON's escapes are decoded), its large
// integers, and the checkout id in the header or the path. What reads as a PAN (NFKC, separators,
// every 13–19-digit window of a longer run) is defined in lib/card-numbers.ts.
//
// Cost on the accept path: each string is first counted for ASCII digits (fewer than 13 and no
// non-ASCII character: done), so a normal body costs a few hundred nanoseconds.

import { containsCardNumber } from '../lib/card-numbers.ts'
import { ProblemError } from './errors.ts'

export { containsCardNumber, passesLuhn } from '../lib/card-numbers.ts'

// Below 10^12 a number has fewer than 13 digits; from 10^21 on, String() writes an exponent.
const numberDigitsFrom = 1e12
const numberDigitsBelow = 1e21

/**
 * True when a parsed JSON value holds a card number in any string, key or integer. Walked with
 * an explicit stack: a body may nest as deep as its size allows.
 */
export function jsonHoldsCardNumber (value: unknown): boolean {
  let pending: unknown[] | undefined
  let item = value
  for (;;) {
    if (typeof item === 'string') {
      if (containsCardNumber(item)) return true
    } else if (typeof item === 'number') {
      if (numberHoldsCardNumber(item)) return true
    } else if (typeof item === 'object' && item !== null) {
      // Strings and numbers inline (a create body is one flat object but for metadata);
      // objects and arrays wait on the stack.
      const record = item as Record<string, unknown>
      for (const key in record) {
        if (containsCardNumber(key)) return true
        const entry = record[key]
        if (typeof entry === 'string') {
          if (containsCardNumber(entry)) return true
        } else if (typeof entry === 'number') {
          if (numberHoldsCardNumber(entry)) return true
        } else if (typeof entry === 'object' && entry !== null) {
          (pending ??= []).push(entry)
        }
      }
    }
    if (pending === undefined || pending.length === 0) return false
    item = pending.pop()
  }
}

// Checked by the parsed value: past 2^53 the digits are no longer exact, but no field accepts
// such a number, so it is refused (and stored nowhere) anyway.
function numberHoldsCardNumber (value: number): boolean {
  const size = Math.abs(value)
  return size >= numberDigitsFrom && size < numberDigitsBelow && Number.isInteger(value) && containsCardNumber(String(size))
}

/**
 * Throws `card_number_detected` when a checkout id (from a header or a path) holds a card
 * number. A path id is also read percent-decoded, as nginx reads it.
 */
export function refuseCardNumberInId (id: string | undefined): void {
  if (id === undefined) return
  if (containsCardNumber(id)) throw new ProblemError('card_number_detected')
  if (id.includes('%')) {
    let decoded: string | undefined
    try {
      decoded = decodeURIComponent(id)
    } catch {
      decoded = undefined
    }
    if (decoded !== undefined && containsCardNumber(decoded)) throw new ProblemError('card_number_detected')
  }
}
