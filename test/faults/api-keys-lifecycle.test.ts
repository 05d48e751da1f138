// Issue #15, merchants and keys, on the running stack: a merchant created and its keys issued,
// restricted, rolled and revoked with scripts/api-keys.ts are in force on every node and on the
// reporting service within seconds, with no restart and no signal (each polls the keys file).
// Runs serially: it edits the shared stack's keys file, and restores it before it ends.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { writeApiKeysFile } from '../../scripts/stack/api-keys.ts'
import { runApiKeysCli } from '../../scripts/api-keys.ts'
import { call, cancelPayment, createPayment, eventually, getPayment, newCheckoutId } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const keysFile = stack.apiKeysFile ?? join(stack.dir, 'api-keys.json')
/** Nodes and the reporting service look at the file every 2 s (apiKeysPollIntervalMs). */
const inForceDeadlineMs = 15_000

async function keysCli (...args: string[]): Promise<any> {
  const result = await runApiKeysCli(['--file', keysFile, ...args, '--json'])
  if (result.exitCode !== 0) throw new Error(`api-keys ${args.join(' ')}: exit ${result.exitCode} ${result.stderr ?? ''}`)
  return JSON.parse(result.stdout)
}

const list = (key: string): ReturnType<typeof call> => call(`${stack.publicUrl}/payments?limit=1`, { headers: { authorization: `Bearer ${key}` } })

async function metric (port: number, name: string): Promise<number | undefined> {
  const text = (await call(`http://127.0.0.1:${port}/metrics`)).text
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(' ').at(-1))
}

/**
 * Waits until every node and the reporting service hold the file's keys (their key-count gauges
 * equal its entries). Watched on their metrics, not by trying a key: every refused try counts
 * against the client IP's failed-key cap, which would lock the shared stack's tests out.
 */
async function inForceEverywhere (what: string): Promise<void> {
  // A revoked key stays in the file (listed as revoked) and grants nothing: the gauges count keys in force.
  const expected = (JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: Array<{ revoked_at?: string }> }).keys.filter((k) => k.revoked_at === undefined).length
  const targets: Array<[string, number, string]> = [
    ...stack.nodes.map((n): [string, number, string] => [n.id, n.adminPort, 'ringpay_api_keys']),
    ['the reporting service', stack.reporting!.port, 'ringpay_reporting_api_keys'],
  ]
  for (const [name, port, gauge] of targets) {
    await eventually(async () => ((await metric(port, gauge)) === expected ? true : undefined), inForceDeadlineMs, `${what}: ${name} holds ${expected} keys`)
  }
}

t.test('a new merchant\'s keys: issued, restricted, rolled and revoked, each in force within seconds', async (t) => {
  const original = readFileSync(keysFile, 'utf8')
  t.teardown(() => writeApiKeysFile(keysFile, original))
  const merchant = `m_${randomBytes(5).toString('hex')}`

  const first = await keysCli('create-merchant', merchant, '--label', 'lifecycle test')
  await inForceEverywhere('the new merchant\'s key, without a restart or a signal')
  const id = newCheckoutId('keys')
  t.equal((await createPayment(stack.publicUrl, first.secret, id)).status, 202)
  t.equal((await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)).status, 404, 'another merchant cannot see it')

  const read = await keysCli('issue', merchant, '--scope', 'read')
  await inForceEverywhere('the read key')
  t.equal((await getPayment(stack.publicUrl, read.secret, id)).status, 200, 'a read key reads the merchant\'s payment')
  t.equal((await list(read.secret)).status, 200, 'and lists through the reporting service')
  const refused = await createPayment(stack.publicUrl, read.secret, newCheckoutId('keys'))
  t.match({ status: refused.status, code: refused.body?.code }, { status: 403, code: 'api_key_scope_insufficient' }, 'a read key cannot create')
  const cancel = await cancelPayment(stack.publicUrl, read.secret, id)
  t.match({ status: cancel.status, code: cancel.body?.code }, { status: 403, code: 'api_key_scope_insufficient' }, 'nor cancel')

  // A roll with no grace: the new key in force, the old one refused, on every node's routing.
  const rolled = await keysCli('roll', first.key_id, '--grace-hours', '0')
  await inForceEverywhere('the roll')
  t.equal((await getPayment(stack.publicUrl, first.secret, id)).status, 401, 'the rolled-out key is refused')
  t.equal((await list(first.secret)).status, 401, 'by the reporting service too')
  t.equal((await createPayment(stack.publicUrl, rolled.secret, newCheckoutId('keys'))).status, 202, 'the new key creates')

  await keysCli('revoke', read.key_id)
  await inForceEverywhere('the revocation')
  t.equal((await getPayment(stack.publicUrl, read.secret, id)).status, 401, 'the revoked key is refused')
  t.equal((await list(read.secret)).status, 401, 'by the reporting service too')
  t.equal((await getPayment(stack.publicUrl, rolled.secret, id)).status, 200, 'the merchant\'s current key still works')
})
