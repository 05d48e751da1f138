import { hash } from 'node:crypto'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import { ApiKeyRegistry, ApiKeysError, apiKeysFileBytesMax } from '../api-keys.ts'
import { createApiKeysReloader } from '../api-keys-reloader.ts'

/** The ApiKeysError reason a reload fails with, or 'loaded'. */
const reasonOf = (reload: Promise<number>): Promise<string> =>
  reload.then(() => 'loaded', (error: unknown) => (error instanceof ApiKeysError ? error.reason : `not an ApiKeysError: ${String(error)}`))

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

// Issue #17: a broken edit of the keys file (e.g. one meant to revoke a key) kept the previous
// set, the revoked key included. Now a bad file leaves no key in force until a valid one is loaded.
t.test('a bad keys file leaves no key in force (fail closed), until a valid one is loaded', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789', m2: 'sk_two_0123456789' })
  const registry = new ApiKeyRegistry(path)
  t.equal(registry.unavailableReason, 'not_loaded', 'nothing is accepted before the first load')
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined)
  await registry.reload()
  t.equal(registry.unavailableReason, undefined)
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), 'm1', 'remembered before the bad reload')
  const digest = (key: string): string => hash('sha256', key, 'hex')
  const bad: Array<[string, string]> = [
    ['{"keys": [{"merchant_id": "x"}]}', 'invalid_entry'],
    [`{"keys": [{"merchant_id": "m2", "key_sha256": "${digest('sk_two_0123456789')}"}`, 'invalid_json'],
    ['{"key": []}', 'invalid_shape'],
    ['null', 'invalid_shape'],
    ['{"keys": [null]}', 'invalid_entry'],
    [JSON.stringify({ keys: [{ merchant_id: 'm1', key_sha256: digest('a') }, { merchant_id: 'm2', key_sha256: digest('a') }] }), 'duplicate_key'],
  ]
  for (const [text, reason] of bad) {
    writeFileSync(path, text)
    t.equal(await reasonOf(registry.reload()), reason)
    t.equal(registry.unavailableReason, reason)
    t.equal(registry.size, 0)
    t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined, `${reason}: the old key is refused`)
    t.equal(registry.merchantFor('Bearer sk_two_0123456789'), undefined, `${reason}: every key is refused`)
  }
  rmSync(path)
  await t.rejects(registry.reload(), /cannot read \(ENOENT\)/)
  t.equal(registry.unavailableReason, 'unreadable')
  t.equal(registry.merchantFor('Bearer sk_two_0123456789'), undefined)

  writeFileSync(path, JSON.stringify({ keys: [{ merchant_id: 'm2', key_sha256: digest('sk_two_0123456789') }] }))
  t.equal(await registry.reload(), 1)
  t.equal(registry.unavailableReason, undefined)
  t.equal(registry.merchantFor('Bearer sk_two_0123456789'), 'm2', 'a valid file puts its keys back in force')
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined, 'the revoked key stays revoked')
})

t.test('an error never quotes the file (it may hold a pasted raw key)', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789' })
  const registry = new ApiKeyRegistry(path)
  writeFileSync(path, '{"keys": [{"merchant_id": "m1", "key_sha256": sk_live_pasted_by_mistake}]}')
  const error = await registry.reload().then(() => new Error('loaded'), (e: unknown) => e as Error)
  t.equal(error.message, `${path}: not valid JSON`)
  t.equal(error.cause, undefined, 'no SyntaxError cause (its message quotes the text)')
  t.notMatch(String(error.stack), /sk_live/)
})

t.test('a keys file over the size bound is refused unread', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789' })
  const registry = new ApiKeyRegistry(path)
  await registry.reload()
  writeFileSync(path, ' '.repeat(apiKeysFileBytesMax + 1))
  t.equal(await reasonOf(registry.reload()), 'too_large')
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined)
})

t.test('the reloader logs each change once, and retries a bad file until it is repaired', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789' })
  const registry = new ApiKeyRegistry(path)
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line)) } })
  let failures = 0
  const reloader = createApiKeysReloader(registry, log, { retryIntervalMs: 20, onChange: (available) => { if (!available) failures++ } })
  t.teardown(() => reloader.stop())
  t.same(await reloader.reload('start'), { ok: true, keys: 1 })
  writeFileSync(path, '{"keys": [{"merchant_id": "m1", "key_sha256": "sk_one_0123456789"}]}')
  t.match(await reloader.reload('signal'), { ok: false, reason: 'invalid_entry' })
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined)
  // The retry timer reads the file again; the same failure is not logged again.
  const retryDeadline = Date.now() + 5_000
  while (failures < 4 && Date.now() < retryDeadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(failures >= 4, 'the bad file was read again by the retry timer')
  t.equal(lines.filter((l) => l.reason === 'invalid_entry').length, 1, 'one log line for the failure')
  writeFileSync(path, JSON.stringify({ keys: [{ merchant_id: 'm1', key_sha256: hash('sha256', 'sk_one_0123456789', 'hex') }] }))
  const deadline = Date.now() + 5_000
  while (registry.unavailableReason !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), 'm1', 'the repaired file is picked up by the retry')
  const loaded = lines.filter((l) => l.msg === 'api keys loaded')
  t.same(loaded.map((l) => l.trigger), ['start', 'retry'])
  const failed = lines.find((l) => l.reason === 'invalid_entry')!
  t.match(failed, { level: 50, trigger: 'signal', file: path })
  t.notMatch(JSON.stringify(lines), /sk_one|[0-9a-f]{64}/, 'no key and no digest in the log')
})

t.test('scopes and expiry: a read key is granted read; an expired key is refused; a bad scope or expiry fails the file', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ringpay-keys-')), 'keys.json')
  const digest = (key: string): string => hash('sha256', key, 'hex')
  const nowMs = Date.parse('2026-12-07T12:00:00Z')
  writeFileSync(path, JSON.stringify({
    keys: [
      { merchant_id: 'm1', key_sha256: digest('sk_full_0123456789') },
      { merchant_id: 'm1', key_sha256: digest('sk_read_0123456789'), scope: 'read' },
      { merchant_id: 'm1', key_sha256: digest('sk_rolled_0123456789'), expires_at: '2026-12-07T12:00:01Z' },
    ],
  }))
  const registry = new ApiKeyRegistry(path)
  t.equal(await registry.reload(), 3)
  t.same(registry.grantFor('Bearer sk_full_0123456789', nowMs), { merchantId: 'm1', scope: 'full', expiresAtMs: Number.POSITIVE_INFINITY })
  t.match(registry.grantFor('Bearer sk_read_0123456789', nowMs), { merchantId: 'm1', scope: 'read' })
  t.match(registry.grantFor('Bearer sk_rolled_0123456789', nowMs), { merchantId: 'm1', scope: 'full' }, 'a rolled key works in its grace period')
  t.equal(registry.grantFor('Bearer sk_rolled_0123456789', nowMs + 1_000), undefined, 'and not from its expires_at on')
  t.match(registry.grantFor('Bearer sk_rolled_0123456789', nowMs), { merchantId: 'm1' }, 'the header is remembered, its expiry checked on every use')
  t.equal(registry.merchantFor('Bearer sk_rolled_0123456789', nowMs + 5_000), undefined)
  for (const bad of [{ scope: 'admin' }, { scope: 'FULL' }, { expires_at: 'tomorrow' }]) {
    writeFileSync(path, JSON.stringify({ keys: [{ merchant_id: 'm1', key_sha256: digest('sk_full_0123456789'), ...bad }] }))
    t.equal(await reasonOf(registry.reload()), 'invalid_entry', `${JSON.stringify(bad)}: the whole file is refused (fail closed)`)
    t.equal(registry.grantFor('Bearer sk_full_0123456789', nowMs), undefined)
  }
})

t.test('a revoked key (revoked_at, kept in the file for listings) grants nothing; an unreadable revoked_at fails the file', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ringpay-keys-')), 'keys.json')
  const digest = (key: string): string => hash('sha256', key, 'hex')
  writeFileSync(path, JSON.stringify({
    merchants: [{ merchant_id: 'm1', created_at: '2026-12-07T11:00:00Z' }],
    keys: [
      { merchant_id: 'm1', key_sha256: digest('sk_live_0123456789') },
      { merchant_id: 'm1', key_sha256: digest('sk_gone_0123456789'), revoked_at: '2026-12-07T12:00:00Z' },
    ],
  }))
  const registry = new ApiKeyRegistry(path)
  t.equal(await registry.reload(), 1, 'only the key in force counts')
  t.equal(registry.merchantFor('Bearer sk_live_0123456789'), 'm1')
  t.equal(registry.merchantFor('Bearer sk_gone_0123456789'), undefined, 'the revoked key is refused')
  for (const revokedAt of ['yesterday', null, 0]) {
    writeFileSync(path, JSON.stringify({ keys: [{ merchant_id: 'm1', key_sha256: digest('sk_gone_0123456789'), revoked_at: revokedAt }] }))
    t.equal(await reasonOf(registry.reload()), 'invalid_entry', `revoked_at ${JSON.stringify(revokedAt)}: the whole file is refused, never read as not revoked`)
    t.equal(registry.merchantFor('Bearer sk_gone_0123456789'), undefined)
  }
  writeFileSync(path, JSON.stringify({ keys: [
    { merchant_id: 'm1', key_sha256: digest('sk_gone_0123456789'), revoked_at: '2026-12-07T12:00:00Z' },
    { merchant_id: 'm2', key_sha256: digest('sk_gone_0123456789') },
  ] }))
  t.equal(await reasonOf(registry.reload()), 'duplicate_key', 'a revoked digest listed again for someone else is still a duplicate')
})

t.test('the reloader picks a changed file up by itself (no signal), and only when it changed', async (t) => {
  const path = keysFile({ m1: 'sk_one_0123456789' })
  const registry = new ApiKeyRegistry(path)
  const triggers: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { const l = JSON.parse(line); if (l.msg === 'api keys loaded') triggers.push(l.trigger) } })
  const reloader = createApiKeysReloader(registry, log, { retryIntervalMs: 60_000, pollIntervalMs: 20 })
  t.teardown(() => reloader.stop())
  await reloader.reload('start')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.same(triggers, ['start'], 'an unchanged file is not read again')
  // Written the way scripts/api-keys.ts writes it: a new file renamed over the old one.
  const next = `${path}.next`
  writeFileSync(next, JSON.stringify({ keys: [{ merchant_id: 'm2', key_sha256: hash('sha256', 'sk_two_0123456789', 'hex') }] }))
  renameSync(next, path)
  const deadline = Date.now() + 5_000
  while (registry.merchantFor('Bearer sk_two_0123456789') === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(registry.merchantFor('Bearer sk_two_0123456789'), 'm2', 'the new key is in force')
  t.equal(registry.merchantFor('Bearer sk_one_0123456789'), undefined, 'the removed one is not')
  t.same(triggers, ['start', 'file_changed'])
})
