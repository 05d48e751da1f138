// Issue #15, the operators' admin API (admin/) on the shared stack: a key issued through it is
// accepted by every node, the reporting service and the notifier within their keys poll; a
// revoked one refused by all of them; a rolled one works beside its successor for the grace, then
// not; listings hold no secret; only the operator token opens it (not a merchant key), and only on
// nginx's internal listener; concurrent changes (API and CLI) all survive; every change audited.
//
// Parallel-safe: every merchant is new (random id), the stack's own keys are never touched. Every
// attempt with a key that may be refused comes from a fresh 127.x.y.z source address, so the nodes'
// failed-key cap (per client IP) never locks out the other tests, which all come from 127.0.0.1.

import { randomBytes, randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { dirname, join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import t, { type Test } from 'tap'
import { runApiKeysCli } from '../../scripts/api-keys.ts'
import { newCheckoutId, unixSocketBaseUrl } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const unixBase = 'http+unix://'
const admin = stack.admin!
const apiKeysFile = stack.apiKeysFile!
/** Nodes, reporting and notifier look at the keys file every 2 s (apiKeysPollIntervalMs); this much for a loaded machine. */
const inForceDeadlineMs = 10_000
const pollIntervalMs = 200
/** A roll's grace in the test: long enough to see both keys work after the new one is in force everywhere (≤ 2 s poll + load). */
const rollGraceS = 8

const runOctet = randomInt(2, 250)
let nextClient = 0
/** A source address no other test uses: failed keys from it count against it alone. */
function clientIp (): string {
  nextClient++
  return `127.${runOctet}.${100 + Math.floor(nextClient / 250)}.${(nextClient % 250) + 1}`
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, text: string, body: any }

function send (url: string, opts: { method?: string, headers?: Record<string, string>, body?: unknown, from?: string } = {}): Promise<Answer> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body)
  const headers: Record<string, string> = { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers }
  // A node's own socket is nginx's side of the node: the node believes the X-Real-IP its caller sends.
  const onSocket = url.startsWith(unixBase)
  const target = onSocket
    ? { socketPath: decodeURIComponent(url.slice(unixBase.length, url.indexOf('/', unixBase.length))), path: url.slice(url.indexOf('/', unixBase.length)), ...(opts.from === undefined ? {} : { headers: { ...headers, 'x-real-ip': opts.from } }) }
    : (() => { const u = new URL(url); return { host: u.hostname, port: u.port, path: u.pathname + u.search, ...(opts.from === undefined ? {} : { localAddress: opts.from }) } })()
  const send = !onSocket && url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send({
      headers,
      ...target,
      method: opts.method ?? 'GET',
      agent: false,
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let body: any
        try { body = text === '' ? undefined : JSON.parse(text) } catch { body = undefined }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

// Every answer of the admin API in this file is checked against its own OpenAPI document (the last test).
const spec = JSON.parse(readFileSync(new URL('../../openapi/ringpay-admin.openapi.json', import.meta.url), 'utf8'))
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
ajv.addSchema({ $id: 'admin', components: spec.components })
const documentedRoutes = Object.keys(spec.paths).map((route) => ({ route, pattern: new RegExp(`^${route.replace(/\{[^}]+\}/g, '[^/]+')}$`) }))
const answers: Array<{ method: string, path: string, res: Answer }> = []

function conformance (method: string, path: string, res: Answer): string | undefined {
  const route = documentedRoutes.find((r) => r.pattern.test(path))?.route
  if (route === undefined) return res.status === 404 && res.body?.code === 'not_found' ? undefined : `${method} ${path}: an undocumented route answered ${res.status}`
  const operation = spec.paths[route][method.toLowerCase()]
  if (operation === undefined) return res.status === 405 ? undefined : `${method} ${route}: undocumented method answered ${res.status}`
  let response = operation.responses[String(res.status)]
  if (response === undefined) return `${method} ${route}: status ${res.status} is not documented`
  if (typeof response.$ref === 'string') response = spec.components.responses[response.$ref.split('/').pop()]
  const contentType = String(res.headers['content-type']).split(';')[0]!
  const media = response.content?.[contentType]
  if (media === undefined) return `${method} ${route} ${res.status}: ${contentType} is not documented`
  const validate = ajv.compile({ $ref: `admin${media.schema.$ref}` })
  return validate(res.body) ? undefined : `${method} ${route} ${res.status}: ${ajv.errorsText(validate.errors)}`
}

const operator = { authorization: `Bearer ${admin.operatorToken}` }
async function adminCall (method: string, path: string, body?: unknown, headers: Record<string, string> = operator): Promise<Answer> {
  const res = await send(`${admin.url}${path}`, { method, headers, body })
  answers.push({ method, path: `/admin${path}`, res })
  return res
}

function newMerchantId (): string {
  return `m_admin_${randomBytes(6).toString('hex')}`
}

async function newMerchantWithKey (t: Test, body: Record<string, unknown> = {}): Promise<{ merchantId: string, key: any }> {
  const merchantId = newMerchantId()
  const created = await adminCall('POST', '/merchants', { merchant_id: merchantId })
  t.equal(created.status, 201, `merchant created: ${created.text}`)
  const issued = await adminCall('POST', `/merchants/${merchantId}/keys`, body)
  t.equal(issued.status, 201, `key issued: ${issued.text}`)
  return { merchantId, key: issued.body }
}

/** Where a key is checked: each node straight on its public socket, the public API (nginx), the reporting service and the notifier. */
function places (): Array<{ name: string, check: (key: string, from: string) => Promise<number> }> {
  const get = async (url: string, key: string, from: string): Promise<number> => (await send(url, { headers: { authorization: `Bearer ${key}` }, from })).status
  return [
    ...stack.nodes.map((n) => ({ name: `node ${n.id}`, check: (key: string, from: string) => get(`${unixSocketBaseUrl(n.publicSocket)}/payments/${newCheckoutId('adm')}`, key, from) })),
    { name: 'the public API', check: (key: string, from: string) => get(`${stack.publicUrl}/payments/${newCheckoutId('adm')}`, key, from) },
    { name: 'the reporting service', check: (key: string, from: string) => get(`${stack.publicUrl}/payments?limit=1`, key, from) },
    { name: 'the notifier', check: (key: string, from: string) => get(`${stack.publicUrl}/webhook_endpoints`, key, from) },
  ]
}

/** A valid key reads: a node answers 404 for an unknown payment, the list services 200. */
const accepted = (status: number): boolean => status === 404 || status === 200

type Place = ReturnType<typeof places>[number]

/** Polls one place until `want` holds for the key, or inForceDeadlineMs passes; the last answer's status. */
async function pollPlace (place: Place, key: string, want: 'accepted' | 'refused', from: string): Promise<number> {
  const deadline = Date.now() + inForceDeadlineMs
  for (;;) {
    const status = await place.check(key, from)
    if ((want === 'accepted' ? accepted(status) : status === 401) || Date.now() > deadline) return status
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
}

/** Polls every place until `want` holds for the key's answer there, each within inForceDeadlineMs; one fresh source IP per place. */
async function everywhere (t: Test, key: string, want: 'accepted' | 'refused', what: string, then?: (place: Place, from: string) => Promise<void>): Promise<void> {
  for (const place of places()) {
    const from = clientIp()
    const status = await pollPlace(place, key, want, from)
    t.ok(want === 'accepted' ? accepted(status) : status === 401, `${what}: ${want} by ${place.name} within ${inForceDeadlineMs} ms (last answer ${status})`)
    await then?.(place, from)
  }
}

/** One try at every place, no polling. */
async function nowEverywhere (t: Test, key: string, want: 'accepted' | 'refused', what: string): Promise<void> {
  const from = clientIp()
  for (const place of places()) {
    const status = await place.check(key, from)
    t.ok(want === 'accepted' ? accepted(status) : status === 401, `${what}: ${want} by ${place.name} (answer ${status})`)
  }
}

async function eventuallyTrue (probe: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + inForceDeadlineMs
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
}

function auditLines (): any[] {
  return readFileSync(join(dirname(apiKeysFile), 'api-keys-audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))
}

t.test('issue a key → accepted everywhere within the reload bound; revoke it → refused everywhere; the trail is audited', async (t) => {
  const { merchantId, key } = await newMerchantWithKey(t, { label: 'admin test' })
  t.match(key, { object: 'api_key', merchant_id: merchantId, scope: 'full', state: 'active', id: /^key_[0-9a-f]{12}$/, secret: /^sk_live_/ })
  await everywhere(t, key.secret, 'accepted', 'the new key')

  const revoked = await adminCall('POST', `/keys/${key.id}/revoke`)
  t.equal(revoked.status, 200)
  t.match(revoked.body, { id: key.id, state: 'revoked', revoked_at: String })
  t.equal(revoked.body.secret, undefined, 'no secret after issue')
  await everywhere(t, key.secret, 'refused', 'the revoked key')

  const again = await adminCall('POST', `/keys/${key.id}/revoke`)
  t.equal(again.status, 200, 'revoking again is answered like the first time')
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body.revoked_at, revoked.body.revoked_at, 'and changes nothing')

  const mine = auditLines().filter((a) => a.merchant_id === merchantId)
  t.same(mine.map((a) => [a.action, a.key_id ?? null, a.operator, a.via]), [
    ['merchant.created', null, admin.operator, 'api'],
    ['key.issued', key.id, admin.operator, 'api'],
    ['key.revoked', key.id, admin.operator, 'api'],
  ], 'one audit line per change: operator, action, merchant, key id')
  t.ok(mine.every((a) => typeof a.time === 'string' && typeof a.request_id === 'string'), 'with the time and nginx\'s request id')
  t.notOk(JSON.stringify(mine).includes(key.secret), 'never the secret')
})

t.test('roll: old and new keys both work during the grace; the old one is refused after it', async (t) => {
  const { key: old } = await newMerchantWithKey(t, { scope: 'read' })
  await everywhere(t, old.secret, 'accepted', 'the key before the roll')
  const rolledAtMs = Date.now()
  const rolled = await adminCall('POST', `/keys/${old.id}/roll`, { grace_period_seconds: rollGraceS })
  t.equal(rolled.status, 201, rolled.text)
  t.match(rolled.body, { object: 'api_key', scope: 'read', state: 'active', secret: /^sk_live_/, rolled_key: { id: old.id, state: 'rolled', rolled_to: rolled.body.id } })
  t.not(rolled.body.secret, old.secret)
  const graceEndsMs = Date.parse(rolled.body.rolled_key.expires_at)
  t.ok(Math.abs(graceEndsMs - (rolledAtMs + rollGraceS * 1000)) < 2_000, 'the old key\'s grace ends when asked')

  // At each place, as soon as the new key works there, the old one must still work there too.
  await everywhere(t, rolled.body.secret, 'accepted', 'the new key', async (place, from) => {
    const status = await place.check(old.secret, from)
    t.ok(Date.now() < graceEndsMs, `${place.name}: checked within the grace`)
    t.ok(accepted(status), `the old key, during the grace: accepted by ${place.name} beside the new one (answer ${status})`)
  })

  await new Promise((resolve) => setTimeout(resolve, Math.max(0, graceEndsMs - Date.now())))
  await everywhere(t, old.secret, 'refused', 'the old key, after the grace')
  await nowEverywhere(t, rolled.body.secret, 'accepted', 'the new key, after the grace')

  const again = await adminCall('POST', `/keys/${old.id}/roll`, {})
  t.match({ status: again.status, code: again.body?.code, state: again.body?.state }, { status: 409, code: 'api_key_not_active', state: 'expired' }, 'a rolled-out key is not rolled again')
})

t.test('list: ids, scope, times, state; never a secret or a digest', async (t) => {
  const { merchantId, key } = await newMerchantWithKey(t)
  const expiresAt = new Date(Date.now() + 86_400_000).toISOString()
  const read = await adminCall('POST', `/merchants/${merchantId}/keys`, { scope: 'read', label: 'reports', expires_at: expiresAt })
  t.equal(read.status, 201)
  t.equal((await adminCall('POST', `/keys/${key.id}/revoke`)).status, 200)
  const list = await adminCall('GET', `/merchants/${merchantId}/keys`)
  t.equal(list.status, 200)
  t.match(list.headers['content-type'], /^application\/json/)
  t.same(list.body.data.map((k: any) => [k.id, k.scope, k.state, k.label, k.expires_at]), [
    [key.id, 'full', 'revoked', null, null],
    [read.body.id, 'read', 'active', 'reports', expiresAt],
  ])
  t.ok(list.body.data.every((k: any) => typeof k.created_at === 'string' && k.secret === undefined && k.key_sha256 === undefined), 'no secret or digest field')
  const keysFileText = readFileSync(apiKeysFile, 'utf8')
  for (const secret of [key.secret, read.body.secret]) {
    t.notOk(list.text.includes(secret), 'no secret in the listing')
    t.notOk(keysFileText.includes(secret), 'nor in the keys file')
  }
  t.notOk(/[0-9a-f]{64}/.test(list.text), 'no digest in the listing')
  const one = await adminCall('GET', `/keys/${read.body.id}`)
  t.match(one.body, { id: read.body.id, state: 'active' })
  t.equal(one.body.secret, undefined)
})

t.test('only an operator token opens it: none, a wrong one, a merchant key → 401', async (t) => {
  const from = clientIp()
  const path = `${admin.url}/merchants`
  const cases: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer rpop_${randomBytes(32).toString('base64url')}` }],
    ['the operator token with one character changed', { authorization: `Bearer ${admin.operatorToken.slice(0, -1)}${admin.operatorToken.endsWith('A') ? 'B' : 'A'}` }],
    ['a merchant API key', { authorization: `Bearer ${stack.apiKeys.merchant_demo}` }],
    ['the token without Bearer', { authorization: admin.operatorToken }],
  ]
  for (const [what, headers] of cases) {
    const res = await send(path, { method: 'POST', headers, body: { merchant_id: newMerchantId() }, from })
    answers.push({ method: 'POST', path: '/admin/merchants', res })
    t.equal(res.status, 401, what)
    t.match(res.headers['content-type'], /^application\/problem\+json/, what)
    t.equal(res.body?.code, 'unauthorized', what)
  }
  t.equal((await send(`${admin.url}/merchants/merchant_demo/keys`, { from })).status, 401, 'reads too')
  t.equal((await send(`${admin.url}/no-such-route`, { from })).status, 401, 'which routes exist is not told without a token')
})

t.test('the public listener never serves it: /admin/ → 404, with the operator token too', async (t) => {
  for (const path of ['/admin/merchants', '/admin/merchants/merchant_demo/keys', '/admin/', '/admin']) {
    for (const method of ['GET', 'POST']) {
      const res = await send(`${stack.publicUrl}${path}`, { method, headers: { ...operator, 'x-payment-checkout-id': 'co_admin' }, ...(method === 'POST' ? { body: { merchant_id: newMerchantId() } } : {}) })
      t.equal(res.status, 404, `${method} ${path}`)
      t.equal(res.body?.code, 'not_found', `${method} ${path}`)
    }
  }
})

t.test('refusals are problem+json with stable codes', async (t) => {
  const maskedLine = '"uri":"/admin/keys/[masked]"'
  const maskedBefore = readFileSync(stack.nginx.accessLog, 'utf8').split(maskedLine).length
  const { merchantId, key } = await newMerchantWithKey(t)
  const cases: Array<[string, Promise<Answer>, number, string]> = [
    ['an existing merchant', adminCall('POST', '/merchants', { merchant_id: merchantId }), 409, 'merchant_exists'],
    ['a bad merchant id', adminCall('POST', '/merchants', { merchant_id: 'bad id' }), 400, 'validation_failed'],
    ['no merchant id', adminCall('POST', '/merchants', {}), 400, 'validation_failed'],
    ['an unknown field', adminCall('POST', `/merchants/${merchantId}/keys`, { scope: 'read', owner: 'x' }), 400, 'validation_failed'],
    ['an unknown scope', adminCall('POST', `/merchants/${merchantId}/keys`, { scope: 'admin' }), 400, 'validation_failed'],
    ['an expiry in the past', adminCall('POST', `/merchants/${merchantId}/keys`, { expires_at: '2020-01-01T00:00:00Z' }), 400, 'validation_failed'],
    ['a key for an unknown merchant', adminCall('POST', `/merchants/${newMerchantId()}/keys`, {}), 404, 'merchant_not_found'],
    ['the keys of an unknown merchant', adminCall('GET', `/merchants/${newMerchantId()}/keys`), 404, 'merchant_not_found'],
    ['an unknown key', adminCall('POST', '/keys/key_000000000000/revoke'), 404, 'api_key_not_found'],
    ['a key named by its secret', adminCall('POST', `/keys/${key.secret}/revoke`), 400, 'validation_failed'],
    ['a negative grace', adminCall('POST', `/keys/${key.id}/roll`, { grace_period_seconds: -1 }), 400, 'validation_failed'],
    ['a wrong method', adminCall('DELETE', `/keys/${key.id}/roll`), 405, 'method_not_allowed'],
    ['an unknown route', adminCall('GET', '/nothing'), 404, 'not_found'],
  ]
  for (const [what, pending, status, code] of cases) {
    const res = await pending
    t.equal(res.status, status, `${what}: ${res.text}`)
    t.match(res.headers['content-type'], /^application\/problem\+json/, what)
    t.equal(res.body?.code, code, what)
  }
  const notJson = await send(`${admin.url}/merchants`, { method: 'POST', headers: { ...operator, 'content-type': 'text/plain' }, body: 'x' })
  answers.push({ method: 'POST', path: '/admin/merchants', res: notJson })
  t.equal(notJson.status, 415)
  t.equal(notJson.body?.code, 'unsupported_media_type')
  // The key named by its secret above was refused; nginx's access log has the line, masked.
  t.equal((await adminCall('POST', `/keys/${key.id}/revoke`)).status, 200)
  await eventuallyTrue(() => readFileSync(stack.nginx.accessLog, 'utf8').split(maskedLine).length > maskedBefore, 'nginx\'s access line of the misnamed key, masked')
  t.notOk(readFileSync(stack.nginx.accessLog, 'utf8').includes(key.secret), 'the secret is in no access log line')
  t.notOk(readFileSync(admin.logFile, 'utf8').includes(key.secret), 'nor in the admin service\'s log')
  const rollRevoked = await adminCall('POST', `/keys/${key.id}/roll`)
  t.match({ status: rollRevoked.status, code: rollRevoked.body?.code, state: rollRevoked.body?.state }, { status: 409, code: 'api_key_not_active', state: 'revoked' })
})

t.test('concurrent changes, from the API and the CLI at once, all survive and all work', async (t) => {
  const merchantId = newMerchantId()
  t.equal((await adminCall('POST', '/merchants', { merchant_id: merchantId })).status, 201)
  const [a, b, c, cli] = await Promise.all([
    adminCall('POST', `/merchants/${merchantId}/keys`, { label: 'a' }),
    adminCall('POST', `/merchants/${merchantId}/keys`, { label: 'b', scope: 'read' }),
    adminCall('POST', '/merchants', { merchant_id: `${merchantId}_2` }),
    runApiKeysCli(['--file', apiKeysFile, 'issue', merchantId, '--label', 'cli', '--json']),
  ])
  t.equal(a.status, 201)
  t.equal(b.status, 201)
  t.equal(c.status, 201)
  t.equal(cli.exitCode, 0, cli.stderr ?? '')
  const fromCli = JSON.parse(cli.stdout)
  const listed = (await adminCall('GET', `/merchants/${merchantId}/keys`)).body.data.map((k: any) => k.id).sort()
  t.same(listed, [a.body.id, b.body.id, fromCli.key_id].sort(), 'every key is in the file')
  t.equal((await adminCall('GET', `/merchants/${merchantId}_2/keys`)).status, 200, 'and the other merchant')
  for (const secret of [a.body.secret, b.body.secret, fromCli.secret]) await everywhere(t, secret, 'accepted', 'each concurrently issued key')
})

t.test('every answer above matches the admin OpenAPI document (openapi/ringpay-admin.openapi.json)', async (t) => {
  t.ok(answers.length > 40, `${answers.length} answers checked`)
  for (const { method, path, res } of answers) {
    const problem = conformance(method, path, res)
    t.equal(problem, undefined, `${method} ${path} ${res.status}`)
  }
  const statuses = new Set(answers.map((a) => a.res.status))
  for (const status of [200, 201, 400, 401, 404, 405, 409, 415]) t.ok(statuses.has(status), `status ${status} seen`)
})
