// The corpus of card-number shapes: what the node must refuse (`card_number_detected`) and what
// it must accept, wherever it appears (body strings and keys, checkout ids in the header and the
// path, webhook bodies). Used by payment-svc/test/card-number-guard.test.ts (the guard alone) and
// test/api/card-numbers.test.ts (through nginx and the nodes, with a fresh PAN per run).
//
// The rules (lib/card-numbers.ts): 13–19 digits, issuer digit 2–6, Luhn; read after NFKC (and any
// Unicode decimal digit by its value); groups joined by up to 3 whitespace, dash, dot or slash
// characters; every 13–19-digit window of a longer run.

/** A shape a PAN can be written in. `json` is the raw JSON string literal, when it differs from JSON.stringify(value). */
export interface RefusedShape {
  label: string
  render: (pan: string) => { value: string, json?: string }
}

const groups = (pan: string, separator: string): string => pan.match(/.{1,4}/g)!.join(separator)
const fullWidth = (digits: string): string => [...digits].map((d) => String.fromCharCode(0xff10 + Number(d))).join('')
const arabicIndic = (digits: string): string => [...digits].map((d) => String.fromCharCode(0x0660 + Number(d))).join('')
const devanagari = (digits: string): string => [...digits].map((d) => String.fromCharCode(0x0966 + Number(d))).join('')
const mathBold = (digits: string): string => [...digits].map((d) => String.fromCodePoint(0x1d7ce + Number(d))).join('')
const escaped = (digits: string): string => [...digits].map((d) => `\\u003${d}`).join('')

export const refusedShapes: RefusedShape[] = [
  { label: 'plain', render: (pan) => ({ value: pan }) },
  { label: 'in a sentence', render: (pan) => ({ value: `card ${pan} thanks` }) },
  { label: 'glued to letters', render: (pan) => ({ value: `ref${pan}x` }) },
  { label: 'spaces', render: (pan) => ({ value: groups(pan, ' ') }) },
  { label: 'dashes', render: (pan) => ({ value: groups(pan, '-') }) },
  { label: 'dots', render: (pan) => ({ value: groups(pan, '.') }) },
  { label: 'slashes', render: (pan) => ({ value: groups(pan, '/') }) },
  { label: 'spaced dashes', render: (pan) => ({ value: groups(pan, ' - ') }) },
  { label: 'mixed separators', render: (pan) => ({ value: `${pan.slice(0, 4)} ${pan.slice(4, 8)}-${pan.slice(8, 12)}.${pan.slice(12)}` }) },
  { label: 'tabs and newlines', render: (pan) => ({ value: groups(pan, '\t\n') }) },
  { label: 'no-break spaces', render: (pan) => ({ value: groups(pan, '\u00a0') }) },
  { label: 'en dashes', render: (pan) => ({ value: groups(pan, '\u2013') }) },
  { label: 'ideographic spaces', render: (pan) => ({ value: groups(pan, '\u3000') }) },
  { label: 'full-width digits', render: (pan) => ({ value: fullWidth(pan) }) },
  { label: 'full-width, full-width dashes', render: (pan) => ({ value: groups(fullWidth(pan), '\uff0d') }) },
  { label: 'Arabic-Indic digits', render: (pan) => ({ value: arabicIndic(pan) }) },
  { label: 'Devanagari digits', render: (pan) => ({ value: devanagari(pan) }) },
  { label: 'mathematical bold digits', render: (pan) => ({ value: mathBold(pan) }) },
  { label: 'half full-width', render: (pan) => ({ value: pan.slice(0, 8) + fullWidth(pan.slice(8)) }) },
  { label: 'JSON escape of the first digit', render: (pan) => ({ value: pan, json: `"${escaped(pan.slice(0, 1))}${pan.slice(1)}"` }) },
  { label: 'JSON escapes of every digit', render: (pan) => ({ value: pan, json: `"${escaped(pan)}"` }) },
  { label: 'followed by a CVV', render: (pan) => ({ value: `${groups(pan, ' ')} 123` }) },
  { label: 'followed by a glued CVV', render: (pan) => ({ value: `${pan}123` }) },
  { label: 'preceded by digits', render: (pan) => ({ value: `00 ${pan}` }) },
  { label: 'preceded by glued digits', render: (pan) => ({ value: `1234${pan}` }) },
  { label: 'expiry and CVV around it', render: (pan) => ({ value: `12/29 ${pan} 123` }) },
]

/** Well-known test PANs of each length and issuer digit. */
export const knownPans: readonly string[] = [
  '4111111111111111', '4242424242424242', '4222222222222', '5555555555554444', '2223003122003222',
  '378282246310005', '30569309025904', '3530111333300000', '6011111111111117', '6200000000000005',
  '4000056655665556', '6221260000000000019',
]

export interface AcceptedCase {
  label: string
  value: string
}

/**
 * What must go through: ordinary numbers, and long digit runs in which no 13–19-digit window is
 * a Luhn-valid number with issuer digit 2–6. (Not every long run qualifies: a random run of 20
 * digits almost always holds such a window, and is refused.)
 */
export const acceptedCases: AcceptedCase[] = [
  { label: 'amount', value: '1999' },
  { label: 'formatted amount', value: 'EUR 1,000,000.00' },
  { label: 'ISO date', value: '2026-12-07' },
  { label: 'ISO date and time', value: '2026-12-07T10:11:12.123Z' },
  { label: 'date and time with a space', value: '2026-12-07 10:11:12' },
  { label: 'European date and amount', value: '07.12.2026 1999' },
  { label: 'UUID', value: '123e4567-e89b-12d3-a456-426614174000' },
  { label: 'UUID with a 15-digit run', value: '550e8400-e29b-41d4-a716-446655440000' },
  { label: 'phone, international', value: '+49 1512 3456789' },
  { label: 'phone, with area code', value: '0049 30 1234 5678' },
  { label: 'phone, US', value: '+1 (555) 123-4567' },
  { label: 'millisecond timestamp', value: '1765000000000' },
  { label: 'ISBN-13', value: '9780306406157' },
  { label: '16 digits failing Luhn in every window', value: '4111111111111112' },
  { label: '13 digits failing Luhn', value: '4111111111111' },
  { label: '28-digit id without an issuer digit', value: '1000000000000000000000000001' },
  { label: 'order id, date and counter', value: '20261207-000123' },
  { label: 'IBAN (DE example)', value: 'DE89 3704 0044 0532 0130 00' },
  { label: 'masked PAN', value: '411111******1111' },
  // Underscores join identifiers' counters (the bench's ids), not card groups.
  { label: 'digit groups joined by underscores', value: 'id_4111_1111_1111_1111' },
  { label: 'bench-style checkout id', value: 'bkabcr1c_1_123456_12345678' },
  { label: 'PSP token', value: 'pm_card_visa' },
]

/** Appends the Luhn check digit to `body`. */
export function withLuhnDigit (body: string): string {
  let sum = 0
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i])
    if (i % 2 === 0) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return body + String((10 - (sum % 10)) % 10)
}

/** A Visa-shaped PAN no other run uses, so a test can look for it in the logs. */
export function freshPan (): string {
  let body = '4'
  while (body.length < 15) body += String(Math.floor(Math.random() * 10))
  return withLuhnDigit(body)
}
