import { hash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ApiKeyRegistry } from '../api-keys.ts'

const keysFile = (keys: Record<string, string>): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'ringpay-keys-')), 'keys.json')
  writeFileSync(path, JSON.stringify({ keys: Object.entries(keys).map(([merchant, key]) => ({ merchant_id: merchant, key_sha256: hash('sha256', key, 'hex') })) }))
  return path
}

t.test('keys resolve to their merchant; a reload revokes a rotated key at once', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789', m2: 'sk_two_0123456789' })
  const registry = new ApiKeyRegistry(path)
  t.equal(await registry.reload(), 2)
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), 'm1')
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), 'm1', 'again, from the remembered header')
  t.equal(registry.merchantFor('Bearer sk_nope'), undefined)
  t.equal(registry.merchantFor('Basic abc'), undefined)
  t.equal(registry.merchantFor(undefined), undefined)
  writeFileSync(path, JSON.stringify({ keys: [{ merchant_id: 'm2', key_sha256: hash('sha256', 'sk_two_0123456789', 'hex') }] }))
  await registry.reload()
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined, 'the removed key no longer works')
  t.equal(registry.merchantFor('Bearer sk_two_0123456789'), 'm2')
})

t.test('a bad keys file keeps the previous keys', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789' })
  const registry = new ApiKeyRegistry(path)
  await registry.reload()
  writeFileSync(path, '{"keys": [{"merchant_id": "x"}]}')
  await t.rejects(registry.reload())
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), 'm1')
})
