// Issue #17, part 6: key revocation fails closed. A keys file that cannot be used (here: an edit
// meant to revoke merchant_other's key, with a syntax error) leaves every node with NO key, the
// revoked one included, instead of the previous set; each node logs it (without a key or a
// digest) and answers 503 `api_keys_unavailable` until a valid file is in force, which its retry
// timer picks up without a signal. Runs serially: it replaces the shared stack's keys file, and
// restores it before it ends.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { internalTokenHeader } from '../../lib/internal-credentials.ts'
import { writeApiKeysFile } from '../../scripts/stack/api-keys.ts'
import { call, createPayment, eventually, getFromNode, getPayment, newCheckoutId, unixSocketBaseUrl, type ApiResponse } from '../helpers/api.ts'
import { loadStackInfo, type StackNodeInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const keysFile = stack.apiKeysFile ?? join(stack.dir, 'api-keys.json')
const demoKey = stack.apiKeys.merchant_demo
const otherKey = stack.apiKeys.merchant_other
/** A node re-reads a bad keys file every apiKeysRetryIntervalMs (5 s): a repaired one is in force within it. */
const repairedInForceDeadlineMs = 15_000
const logLineDeadlineMs = 5_000

/** The admin reload, as an operator (the `ops` service) unless another token is given. */
function reloadKeys (node: StackNodeInfo, token = stack.internalTokens.ops): Promise<ApiResponse> {
  return call(`http://127.0.0.1:${node.adminPort}/admin/reload-keys`, { method: 'POST', headers: { [internalTokenHeader]: token } })
}

/** GET of an unknown payment straight on the node's public socket: 404 for a valid key. */
function getOnNode (node: StackNodeInfo, key: string): Promise<ApiResponse> {
  return getPayment(unixSocketBaseUrl(node.publicSocket), key, newCheckoutId('keys'))
}

async function metric (node: StackNodeInfo, name: string): Promise<number | undefined> {
  const text = (await call(`http://127.0.0.1:${node.adminPort}/metrics`)).text
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(' ').at(-1))
}

function assertKeysUnavailable (t: Test, res: ApiResponse, what: string): void {
  t.equal(res.status, 503, `${what}: ${res.status} ${res.text}`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, what)
  t.equal(res.body?.code, 'api_keys_unavailable', what)
  t.equal(res.headers['retry-after'], '5', what)
  t.equal(res.body?.reason, undefined, `${what}: why the file is bad is not told to the public`)
}

t.test('a malformed keys file revokes every key on every node until a valid one is loaded', async (t) => {
  const original = readFileSync(keysFile, 'utf8')
  t.teardown(async () => {
    writeApiKeysFile(keysFile, original)
    for (const node of stack.nodes) await reloadKeys(node)
  })
  for (const node of stack.nodes) {
    t.equal((await getOnNode(node, demoKey)).status, 404, `${node.id}: demo key valid before`)
    t.equal((await getOnNode(node, otherKey)).status, 404, `${node.id}: other key valid before`)
  }
  const logSizes = new Map(stack.nodes.map((node) => [node.id, readFileSync(node.logFile).length]))

  // An edit that removes merchant_other's key, broken by a trailing comma.
  const revokeOther = JSON.parse(original) as { keys: Array<{ merchant_id: string }> }
  const broken = JSON.stringify({ keys: revokeOther.keys.filter((k) => k.merchant_id !== 'merchant_other') }, null, 2).replace(/\}(\s*)\]/, '},$1]')
  t.throws(() => JSON.parse(broken), SyntaxError, 'the edit is malformed')
  writeApiKeysFile(keysFile, broken)

  for (const node of stack.nodes) {
    const refused = await reloadKeys(node, 'not-the-internal-token-0123456789')
    t.equal(refused.status, 401, `${node.id}: reload-keys needs an internal credential`)
    const forbidden = await reloadKeys(node, stack.internalTokens.processor)
    t.match({ status: forbidden.status, code: forbidden.body?.code }, { status: 403, code: 'internal_forbidden' }, `${node.id}: and an operator's`)
    const reload = await reloadKeys(node)
    t.equal(reload.status, 503, `${node.id}: the reload reports the bad file`)
    t.match(reload.body, { code: 'api_keys_unavailable', reason: 'invalid_json' })
    t.equal(await metric(node, 'ringpay_api_keys_available'), 0, `${node.id}: metric`)
    assertKeysUnavailable(t, await getOnNode(node, otherKey), `${node.id}: the revoked key`)
    assertKeysUnavailable(t, await getOnNode(node, demoKey), `${node.id}: every other key too`)
  }

  // Through nginx: the node's problem reaches the client, and a refused create is stored nowhere.
  const id = newCheckoutId('keys')
  assertKeysUnavailable(t, await createPayment(stack.publicUrl, otherKey, id), 'POST through nginx, revoked key')
  assertKeysUnavailable(t, await createPayment(stack.publicUrl, demoKey, id), 'POST through nginx, kept key')
  for (const node of stack.nodes) t.equal((await getFromNode(node.adminPort, stack.internalTokens.audit, id)).status, 404, `${id} not on ${node.id}`)

  // Each node logged it once, with the reason and no key or digest.
  for (const node of stack.nodes) {
    const line = await eventually(async () => {
      const text = readFileSync(node.logFile).subarray(logSizes.get(node.id)).toString('utf8')
      return text.split('\n').find((l) => l.includes('"reason":"invalid_json"') && l.includes('"trigger":"admin"'))
    }, logLineDeadlineMs, `${node.id}'s log line`)
    t.match(JSON.parse(line), { level: 50, msg: /api keys unavailable/, file: keysFile })
    const logged = readFileSync(node.logFile).subarray(logSizes.get(node.id)).toString('utf8')
    t.notMatch(logged, /sk_test_|[0-9a-f]{64}/, `${node.id}: no key and no digest logged`)
  }

  // The repaired edit (merchant_other revoked) is picked up by every node's retry timer, unsignalled.
  writeApiKeysFile(keysFile, ['merchant_demo'])
  for (const node of stack.nodes) {
    await eventually(async () => ((await getOnNode(node, demoKey)).status === 404 ? true : undefined),
      repairedInForceDeadlineMs, `${node.id} to load the repaired file`)
    t.equal((await getOnNode(node, otherKey)).status, 401, `${node.id}: the revoked key stays revoked`)
    t.equal(await metric(node, 'ringpay_api_keys_available'), 1, `${node.id}: metric`)
    t.equal(await metric(node, 'ringpay_api_keys'), 1, `${node.id}: one key in force`)
  }
})
