// admin/keys-file.ts, the one module that changes the keys file: what it writes is what the nodes'
// parser grants, secrets are nowhere in the file or the audit log, and changes never lose each
// other: in one process (a queue), across processes (the lock file), and against a writer that
// ignores the lock (compare and swap).

import { spawn } from 'node:child_process'
import { hash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseKeysFile } from '../../payment-svc/api-keys.ts'
import { KeysFile, KeysFileError, keyIdOf, readAuditLog, type Actor } from '../keys-file.ts'

const actor: Actor = { operator: 'tester', via: 'api', requestId: 'req-1' }
const nowMs = Date.parse('2026-12-07T12:00:00Z')

function freshFile (t: any, text = '{"keys": []}\n'): string {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-keys-file-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'api-keys.json')
  writeFileSync(file, text, { mode: 0o600 })
  return file
}

const digest = (secret: string): string => hash('sha256', secret, 'hex')
const grants = (file: string): ReturnType<typeof parseKeysFile> => parseKeysFile(file, readFileSync(file, 'utf8'))

async function codeOf (promise: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise)
    return 'done'
  } catch (error) {
    return error instanceof KeysFileError ? error.code : `not a KeysFileError: ${String(error)}`
  }
}

t.test('merchant, keys, roll, revoke: the nodes\' grants follow; the file and the audit log hold no secret', async (t) => {
  const file = freshFile(t)
  let clock = nowMs
  const keys = new KeysFile(file, { nowMs: () => clock })
  t.match(await keys.createMerchant(actor, 'm_one', 'shop'), { merchant_id: 'm_one', object: 'merchant', label: 'shop', created_at: '2026-12-07T12:00:00.000Z' })
  t.equal(await codeOf(keys.createMerchant(actor, 'm_one')), 'merchant_exists')
  t.same(keys.listKeys('m_one'), [], 'a merchant with no key yet')
  t.equal(await codeOf(() => keys.listKeys('m_none')), 'merchant_not_found')
  t.equal(await codeOf(keys.issueKey(actor, { merchantId: 'm_none' })), 'merchant_not_found')

  const full = await keys.issueKey(actor, { merchantId: 'm_one' })
  const read = await keys.issueKey(actor, { merchantId: 'm_one', scope: 'read', label: 'reports', expiresAt: '2027-01-01T00:00:00+01:00' })
  t.match(full.key, { id: keyIdOf(digest(full.secret)), scope: 'full', state: 'active', expires_at: null, revoked_at: null })
  t.match(read.key, { scope: 'read', label: 'reports', expires_at: '2026-12-31T23:00:00.000Z' })
  t.match(grants(file).get(digest(full.secret)), { merchantId: 'm_one', scope: 'full', expiresAtMs: Number.POSITIVE_INFINITY })
  t.match(grants(file).get(digest(read.secret)), { merchantId: 'm_one', scope: 'read', expiresAtMs: Date.parse('2026-12-31T23:00:00Z') })

  const rolled = await keys.rollKey(actor, full.key.id, 3_600_000)
  t.match(rolled.rolled, { id: full.key.id, state: 'rolled', expires_at: '2026-12-07T13:00:00.000Z', rolled_to: rolled.key.id })
  t.match(rolled.key, { scope: 'full', state: 'active', expires_at: null })
  t.equal(grants(file).get(digest(full.secret))!.expiresAtMs, Date.parse('2026-12-07T13:00:00Z'), 'the old key works through its grace')
  t.ok(grants(file).get(digest(rolled.secret)), 'the new key works')
  t.equal(await codeOf(keys.rollKey(actor, full.key.id)), 'api_key_not_active', 'a rolled key is not rolled again')
  const readRolled = await keys.rollKey(actor, read.key.id, 30 * 24 * 3_600_000)
  t.equal(readRolled.rolled.expires_at, '2026-12-31T23:00:00.000Z', 'a grace never extends an expiry already set')
  t.equal(readRolled.key.expires_at, '2026-12-31T23:00:00.000Z', 'the new key keeps the expiry')

  const revoked = await keys.revokeKey(actor, rolled.key.id)
  t.match(revoked, { changed: true, key: { state: 'revoked', revoked_at: '2026-12-07T12:00:00.000Z' } })
  t.equal(grants(file).get(digest(rolled.secret)), undefined, 'a revoked key grants nothing')
  t.match(await keys.revokeKey(actor, rolled.key.id), { changed: false, key: { state: 'revoked' } }, 'revoking again changes nothing')
  t.equal(await codeOf(keys.rollKey(actor, rolled.key.id)), 'api_key_not_active')

  clock = Date.parse('2026-12-07T13:00:00Z')
  t.equal(keys.getKey(full.key.id).state, 'expired', 'past its grace, the rolled key is expired')
  t.same(keys.listKeys('m_one').map((k) => [k.id, k.state]),
    [[full.key.id, 'expired'], [read.key.id, 'rolled'], [rolled.key.id, 'revoked'], [readRolled.key.id, 'active']], 'every key stays listed')

  const text = readFileSync(file, 'utf8') + readFileSync(keys.auditPath, 'utf8')
  for (const secret of [full.secret, read.secret, rolled.secret, readRolled.secret]) t.notOk(text.includes(secret), 'no secret written anywhere')
  t.notOk(JSON.stringify(keys.listKeys('m_one')).includes(digest(full.secret)), 'a listing holds no digest')
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.equal(statSync(keys.auditPath).mode & 0o777, 0o600)
  t.same(readAuditLog(file).map((a) => [a.action, a.key_id ?? '-', a.operator, a.via, a.request_id]), [
    ['merchant.created', '-', 'tester', 'api', 'req-1'],
    ['key.issued', full.key.id, 'tester', 'api', 'req-1'],
    ['key.issued', read.key.id, 'tester', 'api', 'req-1'],
    ['key.rolled', rolled.key.id, 'tester', 'api', 'req-1'],
    ['key.rolled', readRolled.key.id, 'tester', 'api', 'req-1'],
    ['key.revoked', rolled.key.id, 'tester', 'api', 'req-1'],
  ], 'one audit line per change, none for a no-op')
  t.same(readdirSync(join(file, '..')).sort(), ['api-keys-audit.log', 'api-keys.json'], 'no temp or lock file left')
})

t.test('refusals: bad arguments, too many working keys, a file the nodes would refuse is never edited', async (t) => {
  const file = freshFile(t, JSON.stringify({ keys: [{ merchant_id: 'm_old', key_sha256: digest('sk_old') }] }))
  const keys = new KeysFile(file, { nowMs: () => nowMs })
  t.equal(keys.listKeys('m_old').length, 1, 'a merchant known only by its keys (made before merchant records)')
  t.equal(await codeOf(() => keys.createMerchant(actor, 'bad id')), 'invalid_argument')
  t.equal(await codeOf(() => keys.issueKey(actor, { merchantId: 'm_old', scope: 'admin' as any })), 'invalid_argument')
  t.equal(await codeOf(keys.issueKey(actor, { merchantId: 'm_old', expiresAt: '2026-12-07T11:00:00Z' })), 'invalid_argument', 'an expiry in the past')
  t.equal(await codeOf(keys.issueKey(actor, { merchantId: 'm_old', expiresAt: 'tomorrow' })), 'invalid_argument')
  t.equal(await codeOf(() => keys.revokeKey(actor, 'sk_live_a_secret')), 'invalid_argument', 'a key is named by its id')
  t.equal(await codeOf(keys.revokeKey(actor, 'key_000000000000')), 'api_key_not_found')
  t.equal(await codeOf(() => keys.rollKey(actor, 'key_000000000000', -1)), 'invalid_argument')
  for (let i = 1; i < 20; i++) await keys.issueKey(actor, { merchantId: 'm_old' })
  t.equal(await codeOf(keys.issueKey(actor, { merchantId: 'm_old' })), 'api_key_limit_reached', '20 working keys at most')

  const broken = '{"keys": [{"merchant_id": "m_old", "key_sha256": "zz"}]}'
  writeFileSync(file, broken)
  t.equal(await codeOf(keys.issueKey(actor, { merchantId: 'm_old' })), 'keys_file_invalid')
  t.equal(await codeOf(() => keys.listKeys('m_old')), 'keys_file_invalid')
  t.equal(readFileSync(file, 'utf8'), broken, 'left as it was')
  writeFileSync(file, '{"keys": [], "merchants": [{"merchant_id": 7}]}')
  t.equal(await codeOf(keys.createMerchant(actor, 'm_new')), 'keys_file_invalid', 'a bad merchants section too')
})

t.test('concurrent changes in one process are queued: none is lost', async (t) => {
  const file = freshFile(t)
  const keys = new KeysFile(file)
  const other = new KeysFile(file) // a second instance shares the queue and the lock
  await keys.createMerchant(actor, 'm_busy')
  await keys.createMerchant(actor, 'm_busy2')
  const issued = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? keys : other).issueKey(actor, { merchantId: i % 4 < 2 ? 'm_busy' : 'm_busy2' })))
  const g = grants(file)
  t.equal(g.size, 16)
  for (const { secret } of issued) t.ok(g.has(digest(secret)))
})

t.test('across processes: the lock file keeps every change (two CLIs and this process at once)', async (t) => {
  const file = freshFile(t)
  const keys = new KeysFile(file)
  for (const m of ['m_race', 'm_race_a', 'm_race_b']) await keys.createMerchant(actor, m)
  const perProcess = 8
  // Every process starts issuing at the same moment (after the children's start-up), so their changes overlap.
  const startAtMs = Date.now() + 1_500
  const atStart = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, startAtMs - Date.now()))
  const child = (merchantId: string): Promise<string[]> => new Promise((resolve, reject) => {
    const script = `
      import { KeysFile } from ${JSON.stringify(new URL('../keys-file.ts', import.meta.url).pathname)}
      const keys = new KeysFile(${JSON.stringify(file)})
      const ids = []
      await new Promise((resolve) => setTimeout(resolve, ${startAtMs} - Date.now()))
      for (let i = 0; i < ${perProcess}; i++) ids.push((await keys.issueKey({ operator: 'child', via: 'cli' }, { merchantId: ${JSON.stringify(merchantId)} })).key.id)
      process.stdout.write(JSON.stringify(ids))`
    const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`child exited ${code}`))))
  })
  const [a, b, mine] = await Promise.all([child('m_race_a'), child('m_race_b'), atStart().then(() => Promise.all(Array.from({ length: perProcess }, async () => (await keys.issueKey(actor, { merchantId: 'm_race' })).key.id)))])
  const listed = new Set(keys.allKeys().map((k) => k.id))
  t.equal(listed.size, 3 * perProcess, 'every key of every process is in the file')
  for (const id of [...a, ...b, ...mine]) t.ok(listed.has(id), id)
  t.equal(readAuditLog(file).filter((r) => r.action === 'key.issued').length, 3 * perProcess, 'and audited once each')
})

t.test('a held lock makes a change wait; an abandoned one is taken over; one held too long is keys_file_busy', async (t) => {
  const file = freshFile(t)
  const lock = `${file}.lock`
  const keys = new KeysFile(file, { limits: { lockWaitMs: 2_000, lockStaleMs: 60_000, lockPollIntervalMs: 5 } })
  writeFileSync(lock, 'another change\n')
  let done = false
  const waiting = keys.createMerchant(actor, 'm_wait').then(() => { done = true })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.notOk(done, 'it waits while the lock is held')
  t.equal(grants(file).size, 0)
  rmSync(lock)
  await waiting
  t.ok(keys.merchantExists('m_wait'), 'and completes once it is released')

  writeFileSync(lock, 'a dead process\n')
  const old = (Date.now() - 120_000) / 1000
  utimesSync(lock, old, old)
  await keys.createMerchant(actor, 'm_stale')
  t.ok(keys.merchantExists('m_stale'), 'a lock older than lockStaleMs is taken as abandoned')

  const impatient = new KeysFile(file, { limits: { lockWaitMs: 100, lockStaleMs: 60_000, lockPollIntervalMs: 5 } })
  writeFileSync(lock, 'a slow change\n')
  t.equal(await codeOf(impatient.createMerchant(actor, 'm_busy')), 'keys_file_busy')
  t.equal(readFileSync(lock, 'utf8'), 'a slow change\n', 'another\'s lock is not removed')
  rmSync(lock)
})

t.test('compare and swap: a writer that ignores the lock is not overwritten; its change and ours both stay', async (t) => {
  const file = freshFile(t)
  let interfere = 2
  const keys = new KeysFile(file, {
    beforeWrite: () => {
      if (interfere-- <= 0) return
      // A hand edit landing between our read and our write: it adds a key.
      const doc = JSON.parse(readFileSync(file, 'utf8'))
      doc.keys.push({ merchant_id: 'm_hand', key_sha256: digest(`sk_hand_${interfere}`) })
      writeFileSync(file, JSON.stringify(doc))
    },
  })
  await keys.createMerchant(actor, 'm_cas')
  const doc = JSON.parse(readFileSync(file, 'utf8'))
  t.same(doc.keys.map((k: any) => k.merchant_id), ['m_hand', 'm_hand'], 'both hand edits kept')
  t.same(doc.merchants.map((m: any) => m.merchant_id), ['m_cas'], 'and our change made on top of them')
  t.equal(readAuditLog(file).length, 1, 'audited once')

  let always = 0
  const stubborn = new KeysFile(file, { beforeWrite: () => { writeFileSync(file, JSON.stringify({ keys: [], n: always++ })) } })
  t.equal(await codeOf(stubborn.createMerchant(actor, 'm_never')), 'keys_file_busy', 'a file that keeps changing is given up on, bounded')
  t.notOk(readFileSync(file, 'utf8').includes('m_never'))
})
