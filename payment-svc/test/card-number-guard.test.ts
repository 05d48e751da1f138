import t from 'tap'
import { containsCardNumber, passesLuhn } from '../card-number-guard.ts'

t.test('Luhn', (t) => {
  t.ok(passesLuhn('4242424242424242'))
  t.ok(passesLuhn('378282246310005'))
  t.notOk(passesLuhn('4242424242424241'))
  t.end()
})

t.test('finds PANs in text, grouped or not', (t) => {
  t.ok(containsCardNumber('{"payment_method":"4242424242424242"}'))
  t.ok(containsCardNumber('card 4242 4242 4242 4242 ok'))
  t.ok(containsCardNumber('card 5555-5555-5555-4444'))
  t.ok(containsCardNumber('6011111111111117'))
  t.end()
})

t.test('leaves ordinary numbers alone', (t) => {
  t.notOk(containsCardNumber('{"amount":1999}'))
  t.notOk(containsCardNumber('ts 1763900000000'), 'a millisecond timestamp starts with 1')
  t.notOk(containsCardNumber('4242424242424241'), 'fails Luhn')
  t.notOk(containsCardNumber('424242424242'), 'too short')
  t.notOk(containsCardNumber('42424242424242424242'), 'too long')
  t.end()
})
