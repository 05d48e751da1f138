// Card numbers (PANs) in text: found for the node's request guard, masked in every log line.
//
// A PAN is 13–19 digits starting with an issuer digit 2–6 (Mastercard 2/5, Amex/Diners/JCB 3,
// Visa 4, Discover/UnionPay 6) and passing the Luhn check. The issuer-digit rule keeps
// millisecond timestamps (starting with 1) from tripping it.
//
// How text is read, so that a PAN written any plausible way is still seen:
//  - each character is taken after Unicode NFKC normalisation (full-width `４`, superscripts,
//    circled numbers become ASCII digits), and any other Unicode decimal digit (\p{Nd}:
//    Arabic-Indic, Devanagari, …) counts by its value;
//  - digit groups are joined across separators: whitespace (any Unicode space, tab, newline),
//    dashes (any \p{Pd}, the minus sign), full stops and slashes, at most `separatorRunMax` in a
//    row (`4111 - 1111`). Not joining: underscores (identifiers join counters with them, e.g. the
//    bench's `bk…_1_123456_1234567`), commas, colons, semicolons (lists, times), letters and
//    everything else;
//  - a joined run longer than a PAN is searched window by window: every 13–19-digit window is
//    checked, so a PAN followed by a CVV, or preceded by other digits, is found. The price: a
//    long digit run is often taken for a card (a random 20-digit run almost always holds a
//    Luhn-valid window). For card data, over-refusing is the safe side.

export const panDigitsMin = 13
export const panDigitsMax = 19
/** Separator characters allowed in a row between two digits of one run. */
export const separatorRunMax = 3
/** Digits of a masked PAN left readable (the last four, as on a receipt). */
export const maskKeepLastDigits = 4
/** Classified non-ASCII code points kept (a fixed bound; past it they are classified each time). */
export const classificationCacheEntriesMax = 4096

const separator = -1
const other = -2

const decimalDigitPattern = /^\p{Nd}$/u
const separatorPattern = /^[\s\p{Pd}\u2212]$/u

function asciiItem (code: number): number {
  if (code >= 48 && code <= 57) return code - 48
  // space, \t \n \v \f \r, '-', '.', '/'
  if (code === 32 || (code >= 9 && code <= 13) || code === 45 || code === 46 || code === 47) return separator
  return other
}

/** A \p{Nd} digit's value: Unicode assigns them in contiguous runs of ten, from zero. */
function decimalDigitValue (codePoint: number): number {
  let first = codePoint
  while (decimalDigitPattern.test(String.fromCodePoint(first - 1))) first--
  return (codePoint - first) % 10
}

function baseItem (codePoint: number): number {
  if (codePoint < 128) return asciiItem(codePoint)
  const char = String.fromCodePoint(codePoint)
  if (decimalDigitPattern.test(char)) return decimalDigitValue(codePoint)
  if (separatorPattern.test(char)) return separator
  return other
}

const classified = new Map<number, readonly number[]>()

/** What a non-ASCII code point reads as after NFKC: digits, separators, others (`⑩` → 1, 0). */
function nonAsciiItems (codePoint: number): readonly number[] {
  const cached = classified.get(codePoint)
  if (cached !== undefined) return cached
  const char = String.fromCodePoint(codePoint)
  const normal = char.normalize('NFKC')
  const items: number[] = []
  if (normal === char) {
    items.push(baseItem(codePoint))
  } else {
    for (const c of normal) items.push(baseItem(c.codePointAt(0)!))
  }
  if (classified.size < classificationCacheEntriesMax) classified.set(codePoint, items)
  return items
}

const jsonEscapes: Readonly<Record<string, number>> = { n: 10, r: 13, t: 9, f: 12, b: 8, '"': 34, '\\': 92, '/': 47 }

// The digits of the run being read: value and where its character starts and ends in the text.
// Module-level and reused: scanning is synchronous, and most texts never get here.
const runValues: number[] = []
const runStarts: number[] = []
const runEnds: number[] = []
const evenPlainSums: number[] = [0]
const oddPlainSums: number[] = [0]

/**
 * Reads `text` as runs of joined digits and calls `visit` with the length of each run of at
 * least `panDigitsMin` digits (held in runValues/runStarts/runEnds); stops when it returns true.
 * With `json`, the text is JSON (a log line): `\n`, `\u00a0`, … are read as what they encode.
 */
function scanRuns (text: string, json: boolean, visit: (length: number) => boolean): boolean {
  let length = 0
  let pendingSeparators = 0
  let i = 0
  while (i < text.length) {
    const start = i
    let code = text.charCodeAt(i++)
    let items: readonly number[] | undefined
    let item = other
    if (code < 128 && (code !== 92 || !json)) {
      item = asciiItem(code)
    } else {
      if (code === 92) {
        const escaped = text[i]
        if (escaped === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
          code = Number.parseInt(text.slice(i + 1, i + 5), 16)
          i += 5
        } else if (escaped !== undefined) {
          code = jsonEscapes[escaped] ?? 92
          i++
        }
      } else if (code >= 0xd800 && code <= 0xdbff && i < text.length) {
        const low = text.charCodeAt(i)
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
          i++
        }
      }
      if (code < 128) {
        item = asciiItem(code)
      } else {
        items = nonAsciiItems(code)
        if (items.length === 1) {
          item = items[0]!
          items = undefined
        }
      }
    }
    const count = items === undefined ? 1 : items.length
    for (let k = 0; k < count; k++) {
      if (items !== undefined) item = items[k]!
      if (item >= 0) {
        runValues[length] = item
        runStarts[length] = start
        runEnds[length] = i
        length++
        pendingSeparators = 0
      } else if (length === 0) {
        // Not in a run.
      } else if (item === separator && ++pendingSeparators <= separatorRunMax) {
        // Still the same run.
      } else {
        if (length >= panDigitsMin && visit(length)) return true
        length = 0
        pendingSeparators = 0
      }
    }
  }
  return length >= panDigitsMin && visit(length)
}

/**
 * The first window of the run (leftmost, then longest) that is a PAN, as `start * 32 + length`,
 * or -1. Luhn weighs a digit by its distance from the window's last digit, so two prefix sums
 * (even positions plain and odd ones doubled, and the reverse) give every window's sum in O(1).
 */
function firstCardWindow (length: number): number {
  for (let k = 0; k < length; k++) {
    const d = runValues[k]!
    const doubled = d > 4 ? d * 2 - 9 : d * 2
    const even = (k & 1) === 0
    evenPlainSums[k + 1] = evenPlainSums[k]! + (even ? d : doubled)
    oddPlainSums[k + 1] = oddPlainSums[k]! + (even ? doubled : d)
  }
  for (let start = 0; start + panDigitsMin <= length; start++) {
    const issuer = runValues[start]!
    if (issuer < 2 || issuer > 6) continue
    for (let windowLength = Math.min(panDigitsMax, length - start); windowLength >= panDigitsMin; windowLength--) {
      const end = start + windowLength
      const sums = ((end - 1) & 1) === 0 ? evenPlainSums : oddPlainSums
      if ((sums[end]! - sums[start]!) % 10 === 0) return start * 32 + windowLength
    }
  }
  return -1
}

/** True when no digit run of `text` can be long enough: ASCII with fewer than 13 digits. */
function clearlyShort (text: string): boolean {
  let digits = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 128) return false
    if (code >= 48 && code <= 57) digits++
  }
  return digits < panDigitsMin
}

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

const isCardRun = (length: number): boolean => firstCardWindow(length) !== -1

/** True when `text` holds something that reads as a real card number (see the top of this file). */
export function containsCardNumber (text: string): boolean {
  if (clearlyShort(text)) return false
  return scanRuns(text, false, isCardRun)
}

/**
 * `text` with every digit of each run holding a card number replaced by `*`, except the last
 * four of the card (`4111 1111 1111 1111 123` → `**** **** **** 1111 ***`). With `json`, the text
 * is a JSON document (a log line) and escapes are read as what they encode; an escaped digit is
 * replaced whole.
 */
export function maskCardNumbers (text: string, json = false): string {
  if (clearlyShort(text)) return text
  const spans: number[] = []
  scanRuns(text, json, (length) => {
    const window = firstCardWindow(length)
    if (window === -1) return false
    const keepFrom = Math.floor(window / 32) + (window % 32) - maskKeepLastDigits
    const keepTo = keepFrom + maskKeepLastDigits
    for (let k = 0; k < length; k++) {
      if (k >= keepFrom && k < keepTo) continue
      // A character read as several digits (`⑩`) is one span: add it once.
      if (spans.length > 0 && spans[spans.length - 2] === runStarts[k]) continue
      spans.push(runStarts[k]!, runEnds[k]!)
    }
    return false
  })
  if (spans.length === 0) return text
  let masked = ''
  let from = 0
  for (let s = 0; s < spans.length; s += 2) {
    masked += text.slice(from, spans[s]) + '*'
    from = spans[s + 1]!
  }
  return masked + text.slice(from)
}
