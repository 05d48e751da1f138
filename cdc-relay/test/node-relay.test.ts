// A whole payment node in this process, with its relay worker, against a Kafka that is not there:
// the node keeps accepting, the relay retries and reports lag, the disk budget sheds new payments
// (503 backlog_full + Retry-After, readiness, metrics) but not transitions or replays, and a
// shutdown is bounded and loses nothing.

import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { formatInternalServices, newInternalToken, parseInternalServices } from '../../lib/internal-credentials.ts'
import { writeApiKeysFile, demoApiKey } from '../../scripts/stack/api-keys.ts'
import { call, createPayment } from '../../test/helpers/api.ts'
import { defaultLimits } from '../../payment-svc/limits.ts'
import { defaultTrustedProxies } from '../../payment-svc/config.ts'
import { startPaymentNode } from '../../payment-svc/node.ts'
import { PaymentStore, changeLogKey } from '../../payment-svc/store.ts'
import { relayCursorKey } from '../cursor.ts'
import { defaultRelayLimits } from '../limits.ts'
import { silentLog } from './fixtures.ts'
import { testKeyRing, writeTestFieldKeysFile } from '../../test/helpers/field-keys.ts'

const deadlineMs = 15_000
const internalToken = newInternalToken()
const internalServices = parseInternalServices(formatInternalServices([{ service: 'processor', token: internalToken }]))

/** A local port nothing listens on: connections are refused at once. */
async function deadPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

async function metric (adminPort: number, name: string, labels = ''): Promise<number | undefined> {
  const res = await call(`http://127.0.0.1:${adminPort}/metrics`)
  const line = res.text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function eventually<T> (probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const until = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('Kafka unreachable: accepts up to the budget, then sheds new payments only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-node-relay-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const apiKeysFile = join(dir, 'keys.json')
  writeApiKeysFile(apiKeysFile)
  const budget = 10
  process.env.KAFKA_BROKERS = `127.0.0.1:${await deadPort()}`
  process.env.RINGPAY_RELAY_BACKLOG_EVENTS_MAX = String(budget)
  const dataDir = join(dir, 'data')
  const node = await startPaymentNode({
    nodeId: 'nr1', host: '127.0.0.1', publicPort: 0, adminPort: 0, dataDir, apiKeysFile, fieldKeysFile: writeTestFieldKeysFile(dir), internalServices, limits: defaultLimits, webhookSecrets: new Map(), trustedProxies: new Set(defaultTrustedProxies),
  }, silentLog, (reason, error) => t.fail(`node fatal: ${reason}: ${String(error)}`))
  const publicUrl = `http://127.0.0.1:${node.publicPort}`
  const adminUrl = `http://127.0.0.1:${node.adminPort}`

  for (let i = 0; i < budget; i++) {
    const res = await createPayment(publicUrl, demoApiKey, `nr-${i}`)
    t.equal(res.status, 202, `payment ${i} accepted while Kafka is down`)
  }
  await eventually(async () => ((await metric(node.adminPort, 'ringpay_relay_publish_errors_total', 'kind="connection"')) ?? 0) > 0 ? true : undefined,
    'a counted connection error')
  t.equal(await metric(node.adminPort, 'ringpay_relay_lag_events'), budget)
  t.equal(await metric(node.adminPort, 'ringpay_relay_kafka_healthy'), 0)
  t.ok((await metric(node.adminPort, 'ringpay_relay_lag_seconds'))! > 0, 'lag in seconds is reported')

  const shed = await createPayment(publicUrl, demoApiKey, 'nr-over')
  t.equal(shed.status, 503)
  t.equal(shed.body.code, 'backlog_full')
  t.equal(shed.headers['retry-after'], String(defaultRelayLimits.backlogRetryAfterS))
  const replay = await createPayment(publicUrl, demoApiKey, 'nr-0')
  t.equal(replay.status, 200, 'an idempotent replay of an accepted payment still answers')
  const moved = await call(`${adminUrl}/internal/payments/merchant_demo/nr-1/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-ringpay-internal-token': internalToken },
    body: JSON.stringify({ to: 'processing', expected_version: 1, actor: 'processor' }),
  })
  t.equal(moved.status, 200, 'transitions are still accepted: they drain payments')
  const ready = await call(`${adminUrl}/readyz`)
  t.equal(ready.status, 503)
  t.match(ready.body.reason, /relay backlog over budget/)
  t.equal(await metric(node.adminPort, 'ringpay_relay_backlog_full'), 1)
  t.equal(await metric(node.adminPort, 'ringpay_relay_cursor_sequence'), 1)
  await eventually(async () => (await metric(node.adminPort, 'ringpay_relay_changelog_entries')) === budget + 1 ? true : undefined,
    'the change-log recount')

  const startedAt = Date.now()
  await node.shutdown()
  const stopMs = Date.now() - startedAt
  t.ok(stopMs < defaultLimits.shutdownDrainMsMax + defaultRelayLimits.stopWorkerMsMax, `shutdown bounded (${stopMs} ms)`)

  // Nothing published, nothing lost: every entry is still there, the cursor never moved.
  const store = new PaymentStore(dataDir, { sealer: testKeyRing })
  await store.open('nr1', Date.now())
  t.teardown(() => store.close())
  t.equal(store.meta.nextSequence, budget + 2)
  for (let sequence = 1; sequence <= budget + 1; sequence++) t.ok(store.db.getSync(changeLogKey(sequence)), `entry ${sequence} kept`)
  t.equal(store.db.getSync(relayCursorKey), undefined)
  t.equal(store.getPayment('merchant_demo', 'nr-over'), undefined, 'the shed payment was not written')
})

t.test('without KAFKA_BROKERS the node runs without a relay', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-node-norelay-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const apiKeysFile = join(dir, 'keys.json')
  writeApiKeysFile(apiKeysFile)
  delete process.env.KAFKA_BROKERS
  const node = await startPaymentNode({
    nodeId: 'nr2', host: '127.0.0.1', publicPort: 0, adminPort: 0, dataDir: join(dir, 'data'), apiKeysFile, fieldKeysFile: writeTestFieldKeysFile(dir), internalServices, limits: defaultLimits, webhookSecrets: new Map(), trustedProxies: new Set(defaultTrustedProxies),
  }, silentLog, (reason, error) => t.fail(`node fatal: ${reason}: ${String(error)}`))
  t.equal((await createPayment(`http://127.0.0.1:${node.publicPort}`, demoApiKey, 'x-1')).status, 202)
  t.equal(await metric(node.adminPort, 'ringpay_relay_lag_events'), undefined, 'no relay metrics')
  t.equal((await call(`http://127.0.0.1:${node.adminPort}/readyz`)).status, 200)
  await node.shutdown()
})
