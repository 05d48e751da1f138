// scripts/api-keys.ts on a keys file of its own: secrets shown once and stored nowhere, key ids,
// scopes, a roll's grace period, revocation, refusals with exit codes; every file it writes is
// one the nodes' parser accepts, with the grants it says.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseKeysFile } from '../../payment-svc/api-keys.ts'
import { keyIdOf, runApiKeysCli } from '../../scripts/api-keys.ts'
import { sha256Hex } from '../../scripts/stack/api-keys.ts'

function freshFile (t: any): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-keys-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'api-keys.json')
  writeFileSync(file, '{"keys": []}\n', { mode: 0o600 })
  return file
}

const cli = (file: string, ...args: string[]): ReturnType<typeof runApiKeysCli> => runApiKeysCli(['--file', file, ...args, '--json'], {}, Date.parse('2026-12-07T12:00:00Z'))

t.test('create a merchant, issue a read key, roll, revoke: the file holds digests only, the grants follow', async (t) => {
  const file = freshFile(t)
  const created = await cli(file, 'create-merchant', 'm_shop', '--label', 'web shop')
  t.equal(created.exitCode, 0)
  const first = JSON.parse(created.stdout)
  t.match(first, { merchant_id: 'm_shop', scope: 'full', key_id: /^key_[0-9a-f]{12}$/, secret: /^sk_live_[A-Za-z0-9_-]{43}$/ })
  t.equal(keyIdOf(sha256Hex(first.secret)), first.key_id, 'the key id names the digest')
  const read = JSON.parse((await cli(file, 'issue', 'm_shop', '--scope', 'read')).stdout)
  t.equal(read.scope, 'read')
  const text = readFileSync(file, 'utf8')
  t.notOk(text.includes(first.secret) || text.includes(read.secret), 'no secret in the file')
  t.equal(statSync(file).mode & 0o777, 0o600, 'the file stays private')
  let grants = parseKeysFile(file, text)
  t.match(grants.get(sha256Hex(first.secret)), { merchantId: 'm_shop', scope: 'full', expiresAtMs: Number.POSITIVE_INFINITY })
  t.match(grants.get(sha256Hex(read.secret)), { merchantId: 'm_shop', scope: 'read' })

  const listed = JSON.parse((await cli(file, 'list', 'm_shop')).stdout)
  t.same(listed.map((k: any) => [k.key_id, k.scope, k.label]), [[first.key_id, 'full', 'web shop'], [read.key_id, 'read', '']])
  t.notOk(JSON.stringify(listed).includes('sk_live_'), 'list shows no secret')

  const rolled = JSON.parse((await cli(file, 'roll', first.key_id, '--grace-hours', '2')).stdout)
  t.equal(rolled.rolled_key_id, first.key_id)
  t.equal(rolled.old_expires_at, '2026-12-07T14:00:00.000Z', 'the old key works two more hours')
  grants = parseKeysFile(file, readFileSync(file, 'utf8'))
  t.equal(grants.get(sha256Hex(first.secret))!.expiresAtMs, Date.parse('2026-12-07T14:00:00Z'))
  t.match(grants.get(sha256Hex(rolled.secret)), { merchantId: 'm_shop', scope: 'full', expiresAtMs: Number.POSITIVE_INFINITY }, 'the new key: same merchant and scope')
  const rolledAgain = await cli(file, 'roll', first.key_id, '--grace-hours', '48')
  t.equal(rolledAgain.exitCode, 1, 'a rolled key is not rolled again (roll its successor)')
  t.match(rolledAgain.stderr, /api_key_not_active/)
  t.equal(parseKeysFile(file, readFileSync(file, 'utf8')).get(sha256Hex(first.secret))!.expiresAtMs, Date.parse('2026-12-07T14:00:00Z'), 'and its grace is not extended')

  t.equal((await cli(file, 'revoke', read.key_id)).exitCode, 0)
  grants = parseKeysFile(file, readFileSync(file, 'utf8'))
  t.equal(grants.get(sha256Hex(read.secret)), undefined, 'revoked: no grant')
  t.equal(grants.size, 2)
  const states = JSON.parse((await cli(file, 'list', 'm_shop')).stdout).map((k: any) => [k.key_id, k.state])
  t.same(states, [[first.key_id, 'rolled'], [read.key_id, 'revoked'], [rolled.key_id, 'active']], 'the revoked key stays listed, as revoked')
})

t.test('refusals: exit 1 for what does not exist (or already does), exit 2 for usage and a bad file', async (t) => {
  const file = freshFile(t)
  t.equal((await cli(file, 'issue', 'm_none')).exitCode, 1, 'issue for an unknown merchant')
  t.equal((await cli(file, 'create-merchant', 'm_one')).exitCode, 0)
  t.equal((await cli(file, 'create-merchant', 'm_one')).exitCode, 1, 'create an existing merchant')
  t.equal((await cli(file, 'revoke', 'key_000000000000')).exitCode, 1, 'revoke an unknown key')
  t.equal((await cli(file, 'revoke', 'sk_live_looks_like_a_secret')).exitCode, 2, 'a key is named by its id, never its secret')
  t.equal((await cli(file, 'issue', 'm_one', '--scope', 'admin')).exitCode, 2, 'unknown scope')
  t.equal((await cli(file, 'create-merchant', 'bad merchant')).exitCode, 2, 'bad merchant id')
  t.equal((await cli(file, 'explode')).exitCode, 2, 'unknown command')
  const before = readFileSync(file, 'utf8')
  writeFileSync(file, '{"keys": [,]}')
  const broken = await cli(file, 'issue', 'm_one')
  t.equal(broken.exitCode, 2, 'a file the nodes would refuse is not edited')
  t.equal(readFileSync(file, 'utf8'), '{"keys": [,]}', 'and left as it was')
  t.notOk(before.includes('sk_live_'))
})
