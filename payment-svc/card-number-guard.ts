// Refuses raw card numbers (PANs) anywhere in a request, so none is ever stored or logged.
// A PAN is 13–19 digits, optionally grouped by single spaces or dashes, starting with an issuer
// digit 2–6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6) and passing the
// Luhn check. The issuer-digit rule keeps millisecond timestamps (starting with 1) from tripping it.

const digitRunPattern = /\d(?:[ -]?\d){12,}/g
const panDigitsMin = 13
const panDigitsMax = 19

export function passesLuhn (digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

/** True when `text` holds something that looks like a real card number. */
export function containsCardNumber (text: string): boolean {
  // Cheap pre-check: most requests have no run of 13 digits at all.
  digitRunPattern.lastIndex = 0
  for (let match = digitRunPattern.exec(text); match !== null; match = digitRunPattern.exec(text)) {
    const digits = match[0].replace(/[ -]/g, '')
    if (digits.length < panDigitsMin || digits.length > panDigitsMax) continue
    const issuer = digits.charCodeAt(0) - 48
    if (issuer < 2 || issuer > 6) continue
    if (passesLuhn(digits)) return true
  }
  return false
}
