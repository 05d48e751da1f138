// Data at rest (issue #17 part 7), against the running stack: payment method tokens, customer
// refs, metadata and webhook bodies are nowhere on disk in clear (node LevelDB files, Kafka's
// log segments, Postgres rows), yet the API shows them and the PSP gets the token; the stack's
// files are its services' alone (0600 files, 0700 dirs); no service runs as root.

import t from 'tap'
import { randomBytes } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyRing } from '../../lib/field-crypto.ts'
import { attemptTokenContext, openPaymentMethodColumn, openWebhookPayloadColumn } from '../../processor/sealed-columns.ts'
import { createPayment, eventually, getPayment } from '../helpers/api.ts'
import { closeDb, db, nodeReaches, postgresReaches } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const ring = KeyRing.fromFile(stack.fieldKeysFile)
t.teardown(closeDb)

function letters (bytes: number): string {
  return [...randomBytes(bytes)].map((b) => String.fromCharCode(97 + (b % 26))).join('')
}

/** Every regular file under `dir` whose name passes `keep` (symlinks not followed). */
function filesUnder (dir: string, keep: (name: string) => boolean = () => true): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...filesUnder(path, keep))
    else if (entry.isFile() && keep(entry.name)) out.push(path)
  }
  return out
}

/** The files of `paths` that hold `needle` (bytes, as written). */
function holding (paths: readonly string[], needle: string): string[] {
  return paths.filter((path) => readFileSync(path).includes(needle))
}

t.test('sensitive fields are sealed on every disk, shown by the API, and reach the PSP', async (t) => {
  const id = `rest-${letters(16)}`
  const customerRef = `cust-${letters(12)}`
  const metadataKey = `mk_${letters(10)}`
  const metadataValue = `mv-${letters(12)}`
  // pm_card_async: charged, then completed by the PSP's webhook (a recorded webhook body).
  const body = { amount: 4321, currency: 'EUR', payment_method: 'pm_card_async', customer_ref: customerRef, metadata: { [metadataKey]: metadataValue } }
  const created = await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, body)
  t.equal(created.status, 202, created.text)
  const settled = await nodeReaches(id, 60_000)
  t.equal(settled.status, 'succeeded', 'the processor opened the token and the PSP charged it')

  const view = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)
  t.equal(view.body.payment_method, 'pm_card_async', 'the API shows the payment method')
  t.equal(view.body.customer_ref, customerRef)
  t.same(view.body.metadata, { [metadataKey]: metadataValue })

  // Postgres: the projection, the webhook record and the attempt log hold sealed values only.
  const row = await postgresReaches(id, settled.version, 30_000)
  t.match(row.payment_method, /^enc:/, 'payments.payment_method is sealed')
  t.equal(openPaymentMethodColumn(ring, 'merchant_demo', id, row.payment_method), 'pm_card_async')
  t.throws(() => openPaymentMethodColumn(ring, 'merchant_demo', `${id}x`, row.payment_method), { code: 'sealed_value_auth_failed' },
    'bound to its row: it does not open as another payment')
  const hooks = (await db().query('SELECT provider, psp_event_id, payload FROM webhooks WHERE checkout_id = $1', [id])).rows
  t.ok(hooks.length >= 1, 'the completing webhook is recorded')
  for (const hook of hooks) {
    t.same(Object.keys(hook.payload), ['sealed'], 'webhooks.payload holds only the sealed body')
    const opened = JSON.parse(openWebhookPayloadColumn(ring, hook.provider, hook.psp_event_id, id, hook.payload))
    t.ok(JSON.stringify(opened).includes(id), 'the opened body is the PSP event of this payment')
  }
  const attempts = (await db().query('SELECT attempt, request, response FROM psp_attempts WHERE checkout_id = $1', [id])).rows
  t.ok(attempts.length >= 1, 'the charge attempt is logged')
  for (const attempt of attempts) {
    t.notOk(JSON.stringify(attempt.request).includes('pm_card'), 'no token in the stored request')
    t.notOk(JSON.stringify(attempt.response ?? null).includes('pm_card'), 'no token in the stored answer')
    t.equal(ring.openText(attempt.request.payment_method, attemptTokenContext(id, attempt.attempt)), 'pm_card_async')
  }

  // The nodes' LevelDB files (write-ahead logs and tables) and Kafka's segments: no clear value.
  const nodeFiles = stack.nodes.flatMap((node) => filesUnder(node.dataDir))
  const kafkaSegments = filesUnder(join(stack.dir, 'kafka', 'data'), (name) => name.endsWith('.log'))
  t.ok(holding(nodeFiles, id).length > 0, 'the node files were read (the checkout id is a key, not sealed)')
  t.ok(holding(kafkaSegments, id).length > 0, 'the Kafka segments were read (the checkout id is the message key)')
  for (const secret of [customerRef, metadataKey, metadataValue]) {
    t.same(holding(nodeFiles, secret), [], `${secret} in no node file`)
    t.same(holding(kafkaSegments, secret), [], `${secret} in no Kafka segment`)
  }
})

t.test('a payment method token is stored nowhere in clear, even when the PSP refuses it', async (t) => {
  // A token no other payment uses (the sandbox does not know it: 400 invalid_payment_method,
  // whose message quotes it), so a search of every disk means something.
  const token = `pm_rest_${letters(14)}`
  const id = `rest-${letters(16)}`
  const created = await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id, { amount: 1500, currency: 'EUR', payment_method: token })
  t.equal(created.status, 202, created.text)
  const ended = await nodeReaches(id, 60_000)
  t.equal(ended.status, 'failed')
  t.equal(ended.failure_code, 'psp_rejected')
  t.notOk(String(ended.failure_message).includes(token), 'the failure message does not quote the token')
  t.equal((await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id)).body.payment_method, token, 'the API shows it')
  await postgresReaches(id, ended.version, 30_000)
  // The attempt log is written in batches: wait for this payment's row.
  await eventually(async () => {
    const { rows } = await db().query('SELECT count(*)::int AS n FROM psp_attempts WHERE checkout_id = $1', [id])
    return rows[0].n >= 1 ? true : undefined
  }, 30_000, `${id}'s PSP attempt in Postgres`)
  for (const table of ['payments', 'payment_events', 'psp_attempts', 'webhooks']) {
    const { rows } = await db().query(`SELECT count(*)::int AS n FROM ${table} t WHERE t::text LIKE $1`, [`%${token}%`])
    t.equal(rows[0].n, 0, `no ${table} row holds it`)
  }
  const nodeFiles = stack.nodes.flatMap((node) => filesUnder(node.dataDir))
  const kafkaSegments = filesUnder(join(stack.dir, 'kafka', 'data'), (name) => name.endsWith('.log'))
  t.same(holding(nodeFiles, token), [], 'in no node file')
  t.same(holding(kafkaSegments, token), [], 'in no Kafka segment (events and dead letters)')
  // Our logs (the sandbox PSP's own log is the PSP's business, like its store).
  const ourLogs = filesUnder(join(stack.dir, 'logs')).filter((path) => !path.endsWith('/psp.log'))
  t.same(holding(ourLogs, token), [], 'in no log of ours')
})

t.test('the stack dir: files 0600, dirs 0700, the key ring outside every data dir', async (t) => {
  const root = process.getuid?.() === 0
  // Dirs others may pass through (not list) when the services run as other users: the stack
  // dir and nginx's prefix (its workers reach their temp dirs; the config stays root's).
  const passThrough = new Set(root ? [stack.dir, join(stack.dir, 'nginx')] : [])
  const loose: string[] = []
  const walk = (path: string): void => {
    const stat = lstatSync(path)
    if (stat.isSymbolicLink() || stat.isSocket()) return // Postgres' socket sits in its 0700 data dir
    const mode = stat.mode & 0o777
    if (stat.isDirectory()) {
      const allowed = passThrough.has(path) ? 0o711 : 0o700
      if ((mode | allowed) !== allowed) loose.push(`${path} ${mode.toString(8)}`)
      for (const entry of readdirSync(path)) walk(join(path, entry))
    } else if ((mode & 0o077) !== 0) {
      loose.push(`${path} ${mode.toString(8)}`)
    }
  }
  walk(stack.dir)
  t.same(loose, [], 'nothing readable or writable by group or others (logs, LevelDB, Kafka, Postgres, secrets)')
  const keys = lstatSync(stack.fieldKeysFile)
  t.equal(keys.mode & 0o777, 0o600, 'the key ring is 0600')
  for (const dataDir of [...stack.nodes.map((n) => n.dataDir), join(stack.dir, 'kafka'), join(stack.dir, 'psp'), join(stack.dir, 'nimbus')]) {
    t.notOk(stack.fieldKeysFile.startsWith(dataDir + '/'), `the key ring is not inside ${dataDir}`)
  }
  if (root) t.equal(keys.uid, stack.serviceUser?.uid, 'owned by the service user (nodes and processors read it)')
})

t.test("Kafka's passwords and the event-signing keys: 0600 in secrets/, in no log, data file or command line", async (t) => {
  const secretsDir = join(stack.dir, 'secrets')
  const users = join(secretsDir, 'kafka-users.json')
  for (const file of [users, stack.eventKeysFile]) {
    t.equal(lstatSync(file).mode & 0o777, 0o600, `${file} is 0600`)
    t.ok(file.startsWith(secretsDir + '/'), `${file} is in secrets/, outside every data dir`)
  }
  const { passwords, controllerPassword } = JSON.parse(readFileSync(users, 'utf8')) as { passwords: Record<string, string>, controllerPassword: string }
  const secrets = [...Object.values(passwords), controllerPassword,
    ...(JSON.parse(readFileSync(stack.eventKeysFile, 'utf8')) as { keys: Array<{ key: string }> }).keys.map((k) => k.key)]
  // Where they may be: the secrets dir, the info file (0600, for tests and tools), and the broker's
  // own config (its login as admin and its controller login; 0600 in its 0700 dir).
  const allowed = new Set([join(stack.dir, 'info.json'), join(stack.dir, 'kafka', 'server.properties')])
  const files = filesUnder(stack.dir).filter((path) => !path.startsWith(secretsDir + '/') && !allowed.has(path) && !/\/postgres\/data\//.test(path))
  const leaks = secrets.flatMap((secret) => holding(files, secret))
  t.same(leaks, [], 'in no log, data or config file but the allowed ones')
  const cmdlines = readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return secrets.some((secret) => cmdline.includes(secret)) ? [pid] : []
    } catch {
      return []
    }
  })
  t.same(cmdlines, [], 'on no process command line (ps shows those to every local user)')
})

function uidOf (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!
  // Real, effective, saved, filesystem: none may be root.
  return Math.min(...line.split(/\s+/).slice(1, 5).map(Number))
}

function childrenOf (pid: number): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(name)] : []
    } catch {
      return []
    }
  })
}

t.test('no service runs as root, nginx workers included', async (t) => {
  const { services } = await control<{ services: { name: string, pid: number | null, external?: boolean }[] }>('/services', 'GET')
  const running = services.filter((s) => s.pid !== null && s.external !== true)
  t.ok(running.length >= 8, `services found: ${running.map((s) => s.name).join(', ')}`)
  for (const service of running) {
    if (service.name === 'nginx') {
      // The master (root when the runner is) only reads its config and opens its logs; every
      // request is handled by a worker.
      const workers = childrenOf(service.pid!)
      t.ok(workers.length >= 1, 'nginx has workers')
      for (const worker of workers) t.not(uidOf(worker), 0, `nginx worker ${worker} is not root`)
      continue
    }
    t.not(uidOf(service.pid!), 0, `${service.name} (pid ${service.pid}) is not root`)
    if (process.getuid?.() === 0 && service.name !== 'postgres') {
      t.equal(uidOf(service.pid!), stack.serviceUser?.uid, `${service.name} runs as ${stack.serviceUser?.name}`)
    }
  }
})
