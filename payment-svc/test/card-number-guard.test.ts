import { randomInt } from 'node:crypto'
import t from 'tap'
import { maskCardNumbers } from '../../lib/card-numbers.ts'
import { acceptedCases, knownPans, refusedShapes, withLuhnDigit } from '../../test/helpers/card-number-corpus.ts'
import { prng } from '../../test/helpers/prng.ts'
import { containsCardNumber, jsonHoldsCardNumber, passesLuhn, refuseCardNumberInId } from '../card-number-guard.ts'

// A slow, literal reading of the rules, to check the fast scanner against: NFKC, Unicode digits
// by value, runs joined by ≤ 3 separators, every 13–19-digit window, issuer 2–6, Luhn.
function referenceHoldsCard (text: string): boolean {
  const digitOf = (char: string): number | undefined => {
    if (!/^\p{Nd}$/u.test(char)) return undefined
    let first = char.codePointAt(0)!
    while (/^\p{Nd}$/u.test(String.fromCodePoint(first - 1))) first--
    return (char.codePointAt(0)! - first) % 10
  }
  const runs: number[][] = [[]]
  let separators = 0
  for (const char of text.normalize('NFKC')) {
    const digit = digitOf(char)
    const run = runs[runs.length - 1]!
    if (digit !== undefined) {
      run.push(digit)
      separators = 0
    } else if (/^[\s\p{Pd}\u2212./]$/u.test(char) && run.length > 0 && ++separators <= 3) {
      continue
    } else if (run.length > 0) {
      runs.push([])
      separators = 0
    }
  }
  for (const run of runs) {
    const digits = run.join('')
    for (let start = 0; start < digits.length; start++) {
      for (let length = 13; length <= 19 && start + length <= digits.length; length++) {
        const window = digits.slice(start, start + length)
        if (/^[2-6]/.test(window) && passesLuhn(window)) return true
      }
    }
  }
  return false
}

t.test('Luhn', (t) => {
  t.ok(passesLuhn('4242424242424242'))
  t.ok(passesLuhn('378282246310005'))
  t.notOk(passesLuhn('4242424242424241'))
  t.equal(withLuhnDigit('424242424242424'), '4242424242424242')
  t.end()
})

t.test('every known test PAN is a card, in every shape of the corpus', (t) => {
  for (const pan of knownPans) {
    t.ok(passesLuhn(pan), `${pan} passes Luhn`)
    for (const shape of refusedShapes) {
      const { value, json } = shape.render(pan)
      t.ok(containsCardNumber(value), `${pan} ${shape.label}: ${JSON.stringify(value)}`)
      t.ok(jsonHoldsCardNumber(JSON.parse(`{"description":${json ?? JSON.stringify(value)}}`)), `${pan} ${shape.label} in a parsed body`)
    }
  }
  t.end()
})

t.test('the accepted cases are not cards, for the guard and for the reference', (t) => {
  for (const { label, value } of acceptedCases) {
    t.notOk(referenceHoldsCard(value), `reference: ${label}`)
    t.notOk(containsCardNumber(value), `${label}: ${value}`)
    t.notOk(jsonHoldsCardNumber({ description: value, metadata: { [value]: value } }), `${label} in a body`)
    t.equal(maskCardNumbers(value), value, `${label} is logged as is`)
  }
  t.end()
})

t.test('the guard agrees with the reference on random digit texts', (t) => {
  const alphabet = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', '-', '.', '/', '_', 'a', ',', '\u00a0', '\uff14', '\u0664', '\u2013']
  // Seeded, so a disagreement replays: RINGPAY_GUARD_SEED=<uint32> (printed below).
  const seed = process.env.RINGPAY_GUARD_SEED !== undefined ? Number(process.env.RINGPAY_GUARD_SEED) >>> 0 : randomInt(0, 2 ** 32 - 1)
  t.comment(`seed ${seed}`)
  const random = prng(seed)
  let cards = 0
  for (let i = 0; i < 20_000; i++) {
    const length = 10 + Math.floor(random() * 30)
    let text = ''
    for (let k = 0; k < length; k++) text += alphabet[random() < 0.7 ? Math.floor(random() * 10) : Math.floor(random() * alphabet.length)]
    const expected = referenceHoldsCard(text)
    if (expected) cards++
    if (containsCardNumber(text) !== expected) {
      t.fail(`disagrees on ${JSON.stringify(text)}: reference ${expected} (seed ${seed})`)
      break
    }
  }
  t.ok(cards > 1000 && cards < 19_000, `both outcomes were exercised (${cards} cards)`)
  t.end()
})

t.test('numbers, keys and nesting in a parsed body', (t) => {
  t.ok(jsonHoldsCardNumber(JSON.parse('{"amount":4111111111111111}')), 'an integer')
  t.ok(jsonHoldsCardNumber(JSON.parse('{"metadata":{"4111111111111111":"x"}}')), 'a key')
  t.ok(jsonHoldsCardNumber(JSON.parse('{"a":[1,{"b":["4111 1111 1111 1111"]}]}')), 'nested in arrays and objects')
  t.notOk(jsonHoldsCardNumber(JSON.parse('{"amount":1000000000000,"created":1765000000,"x":1.5e300,"y":null,"z":true}')), 'ordinary numbers')
  const deep = '['.repeat(5000) + '"4111111111111111"' + ']'.repeat(5000)
  t.ok(jsonHoldsCardNumber(JSON.parse(deep)), 'deep nesting does not overflow the stack')
  t.end()
})

t.test('checkout ids are also read percent-decoded', (t) => {
  t.throws(() => refuseCardNumberInId('4111111111111111'), { code: 'card_number_detected' })
  t.throws(() => refuseCardNumberInId('%34111111111111111'), { code: 'card_number_detected' })
  t.throws(() => refuseCardNumberInId('%EF%BC%94111111111111111'), { code: 'card_number_detected' })
  t.doesNotThrow(() => refuseCardNumberInId('co_%zz'), 'a bad escape is left to the id check')
  t.doesNotThrow(() => refuseCardNumberInId(undefined))
  t.end()
})

t.test('masking keeps the last four digits of the card and nothing else of its run', (t) => {
  t.equal(maskCardNumbers('card 4111 1111 1111 1111 123 ok'), 'card **** **** **** 1111 *** ok')
  t.equal(maskCardNumbers('４１１１１１１１１１１１１１１１'), '************１１１１')
  t.equal(maskCardNumbers('a 4111111111111111 b 5555-5555-5555-4444'), 'a ************1111 b ****-****-****-4444')
  t.equal(maskCardNumbers('ts 1765000000000 id 42'), 'ts 1765000000000 id 42', 'nothing card-like: unchanged')
  t.end()
})

t.test('masking a JSON log line reads its escapes', (t) => {
  const pan = '4000056655665556'
  const line = JSON.stringify({ msg: groups(pan, '\n'), other: groups(pan, '\t'), url: `/payments/${pan}` })
  const masked = maskCardNumbers(line, true)
  for (const part of [pan.slice(0, 4), pan.slice(4, 8), pan.slice(8, 12)]) t.notOk(masked.includes(part), `${part} is masked: ${masked}`)
  t.same(Object.keys(JSON.parse(masked)), ['msg', 'other', 'url'], 'still valid JSON')
  t.equal(maskCardNumbers('{"m":"\\u0034111111111111111"}', true), '{"m":"************1111"}', 'an escaped digit is masked whole')
  t.end()
})

function groups (pan: string, separator: string): string {
  return pan.match(/.{1,4}/g)!.join(separator)
}
