// The key ring: values seal and open, carry their key id, survive rotation, and refuse to open
// when tampered with, moved to another context, or sealed under a key the ring does not hold.

import t from 'tap'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  FieldCryptoError, KeyRing, ivBytes, newFieldKey, sealedKeyId, tagBytes, withNewActiveKey, type FieldKeysFile,
} from '../field-crypto.ts'

const plain = Buffer.from('pm_card_visa|cust_42', 'utf8')
const context = 'payment/merchant_demo/co_1'

function codeOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof FieldCryptoError ? error.code : `not typed: ${String(error)}`
  }
  return undefined
}

t.test('seals to a self-describing value that opens only in its context', async (t) => {
  const ring = new KeyRing({ active: 'k1', keys: [newFieldKey('k1')] })
  const sealed = ring.seal(plain, context)
  t.equal(sealed.length, 2 + 2 + ivBytes + plain.length + tagBytes)
  t.equal(sealedKeyId(sealed), 'k1')
  t.notOk(Buffer.from(sealed).includes(plain), 'no clear text inside')
  t.same(ring.open(sealed, context), plain)
  t.not(Buffer.compare(Buffer.from(ring.seal(plain, context)), Buffer.from(sealed)), 0, 'a random IV per value')
  t.equal(codeOf(() => ring.open(sealed, 'payment/merchant_demo/co_2')), 'sealed_value_auth_failed', 'another payment')
  t.equal(codeOf(() => ring.open(sealed, 'payment/merchant_other/co_1')), 'sealed_value_auth_failed', 'another merchant')
})

t.test('a tampered value is refused with a typed error, never returned', async (t) => {
  const ring = new KeyRing({ active: 'k1', keys: [newFieldKey('k1')] })
  const sealed = Buffer.from(ring.seal(plain, context))
  for (let at = 4; at < sealed.length; at++) {
    const bad = Buffer.from(sealed)
    bad[at]! ^= 0x01
    const code = codeOf(() => ring.open(bad, context))
    if (code !== 'sealed_value_auth_failed') t.fail(`byte ${at} flipped: ${code}`)
  }
  t.equal(codeOf(() => ring.open(sealed.subarray(0, sealed.length - 1), context)), 'sealed_value_auth_failed', 'truncated tag')
  t.equal(codeOf(() => ring.open(sealed.subarray(0, 10), context)), 'sealed_value_malformed')
  t.equal(codeOf(() => ring.open(Buffer.from([1]), context)), 'sealed_value_malformed')
  const version = Buffer.from(sealed); version[0] = 2
  t.equal(codeOf(() => ring.open(version, context)), 'sealed_value_unsupported_version')
  t.equal(codeOf(() => ring.openText('pm_card_visa', context)), 'sealed_value_malformed', 'clear text is not accepted as sealed')
})

t.test('rotation: old values still open, new ones use the new key; unknown ids refused', async (t) => {
  const first: FieldKeysFile = { active: 'k1', keys: [newFieldKey('k1')] }
  const before = new KeyRing(first)
  const old = before.seal(plain, context)
  const rotated = new KeyRing(withNewActiveKey(first, newFieldKey('k2')))
  t.equal(rotated.activeKeyId, 'k2')
  t.same(rotated.open(old, context), plain, 'sealed under k1, opened after rotation')
  const fresh = rotated.seal(plain, context)
  t.equal(sealedKeyId(fresh), 'k2')
  t.equal(codeOf(() => before.open(fresh, context)), 'field_key_unknown', 'a ring without k2')
  // A header naming another key the ring holds does not open either: the header is authenticated.
  const swapped = Buffer.from(fresh); swapped.write('k1', 2, 'latin1')
  t.equal(codeOf(() => rotated.open(swapped, context)), 'sealed_value_auth_failed')
  t.equal(rotated.openText(rotated.sealText('cust_é', context), context), 'cust_é')
})

t.test('keys files: shape, size of keys, mode; errors never quote a key', async (t) => {
  const good = newFieldKey('k1')
  t.equal(codeOf(() => new KeyRing({ active: 'k2', keys: [good] })), 'field_keys_invalid')
  t.equal(codeOf(() => new KeyRing({ active: 'k1', keys: [] })), 'field_keys_invalid')
  t.equal(codeOf(() => new KeyRing({ active: 'k1', keys: [good, good] })), 'field_keys_invalid')
  t.equal(codeOf(() => new KeyRing({ active: 'k1', keys: [{ id: 'k1', key: Buffer.alloc(16).toString('base64') }] })), 'field_keys_invalid')
  t.equal(codeOf(() => new KeyRing({ active: 'k 1', keys: [{ ...good, id: 'k 1' }] })), 'field_keys_invalid')
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-field-keys-'))
  const path = join(dir, 'field-keys.json')
  writeFileSync(path, JSON.stringify({ active: 'k1', keys: [good] }), { mode: 0o600 })
  chmodSync(path, 0o600)
  t.equal(KeyRing.fromFile(path).activeKeyId, 'k1')
  chmodSync(path, 0o640)
  t.equal(codeOf(() => KeyRing.fromFile(path)), 'field_keys_insecure_mode', 'group-readable keys refused')
  chmodSync(path, 0o600)
  writeFileSync(path, `{"active": "k1", "keys": [{"id": "k1", "key": "${good.key}"`)
  try {
    KeyRing.fromFile(path)
    t.fail('malformed file accepted')
  } catch (error) {
    t.equal((error as FieldCryptoError).code, 'field_keys_invalid')
    t.notMatch((error as Error).message, good.key, 'the key is not quoted')
  }
  t.equal(codeOf(() => KeyRing.fromFile(join(dir, 'missing.json'))), 'field_keys_unreadable')
})

t.test('a reloading ring opens values sealed under a key added after it started, once per interval', async (t) => {
  const { ReloadingKeyRing, withNewActiveKey: rotate } = await import('../field-crypto.ts')
  const dir = mkdtempSync(join(tmpdir(), 'reloading-ring-'))
  const path = join(dir, 'field-keys.json')
  const first = { active: 'k1', keys: [newFieldKey('k1')] }
  writeFileSync(path, JSON.stringify(first), { mode: 0o600 })
  let loads = 0
  const ring = new ReloadingKeyRing(() => { loads++; return KeyRing.fromFile(path) }, 60_000)
  const rotated = rotate(first, newFieldKey('k2'))
  writeFileSync(path, JSON.stringify(rotated), { mode: 0o600 })
  const writer = new KeyRing(rotated)
  const sealed = writer.seal(Buffer.from('pm_card_visa'), 'payment/m/co_1')
  t.equal(ring.open(sealed, 'payment/m/co_1').toString(), 'pm_card_visa', 'read the file again and opened it')
  t.equal(ring.activeKeyId, 'k2', 'now seals with the key the file made active')
  t.equal(loads, 2)
  const k3 = new KeyRing({ active: 'k3', keys: [newFieldKey('k3')] })
  t.throws(() => ring.open(k3.seal(Buffer.from('x'), 'c'), 'c'), { code: 'field_key_unknown' }, 'a key the file does not hold either: still unknown')
  t.throws(() => ring.open(k3.seal(Buffer.from('x'), 'c'), 'c'), { code: 'field_key_unknown' })
  t.equal(loads, 2, 'not read again within the interval (an unknown key cannot make it read the file on every value)')
  t.throws(() => ring.open(Buffer.from([1, 2, 107, 49, 0, 0]), 'c'), { code: 'sealed_value_malformed' }, 'other errors are not retried')
})
