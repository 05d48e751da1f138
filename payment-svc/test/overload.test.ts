// A node with a tiny ring buffer under a burst: the overflow gets 503 + Retry-After, nothing
// crashes, and nothing refused is half-written. A real node process, spoken to directly.

import { spawn } from 'node:child_process'
import { hash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { writeTestFieldKeysFile } from '../../test/helpers/field-keys.ts'
import { Pool } from 'undici'
import { formatInternalServices, newInternalToken } from '../../lib/internal-credentials.ts'
import { pickFreePorts } from '../../scripts/stack/ports.ts'
import { eventually } from '../../test/helpers/api.ts'

const apiKey = 'sk_test_overload_0123456789'
const token = newInternalToken()
const burstSize = 400
const startDeadlineMs = 15_000

t.test('a full ring sheds load with 503 and writes nothing it refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-overload-'))
  const keysFile = join(dir, 'keys.json')
  writeFileSync(keysFile, JSON.stringify({ keys: [{ merchant_id: 'm1', key_sha256: hash('sha256', apiKey, 'hex') }] }))
  // Free ports below Linux's ephemeral range, each checked by binding it: a random pick in
  // 20000-40000 reached into the ephemeral range (32768+), where another test's outgoing
  // connection held it, and the node died with EADDRINUSE (seen once in CI).
  const [publicPort, adminPort] = await pickFreePorts(2) as [number, number]
  const child = spawn(process.execPath, [new URL('../main.ts', import.meta.url).pathname], {
    env: {
      ...process.env,
      RINGPAY_NODE_ID: 'overload',
      RINGPAY_PUBLIC_PORT: String(publicPort),
      RINGPAY_ADMIN_PORT: String(adminPort),
      RINGPAY_DATA_DIR: join(dir, 'db'),
      RINGPAY_API_KEYS_FILE: keysFile,
      RINGPAY_FIELD_KEYS_FILE: writeTestFieldKeysFile(dir),
      RINGPAY_INTERNAL_SERVICES: formatInternalServices([{ service: 'audit', token }]),
      RINGPAY_RING_CAPACITY: '4',
      RINGPAY_BATCH_SIZE_MAX: '2',
      RINGPAY_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const pool = new Pool(`http://127.0.0.1:${publicPort}`, { connections: 128, pipelining: 1 })
  const admin = new Pool(`http://127.0.0.1:${adminPort}`, { connections: 4 })
  t.teardown(async () => { await pool.close(); await admin.close() })

  await eventually(async () => {
    const res = await admin.request({ path: '/readyz', method: 'GET' }).catch(() => undefined)
    if (res === undefined) return undefined
    await res.body.dump()
    return res.statusCode === 200 ? true : undefined
  }, startDeadlineMs, 'the node to be ready')

  const results = await Promise.all(Array.from({ length: burstSize }, async (_, i) => {
    const id = `ovl-${i}`
    const res = await pool.request({
      path: '/payments',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, 'x-payment-checkout-id': id },
      body: JSON.stringify({ amount: 100 + i, currency: 'USD', payment_method: 'pm_card_visa' }),
    })
    const body = await res.body.json() as Record<string, unknown>
    return { id, status: res.statusCode, retryAfter: res.headers['retry-after'], contentType: res.headers['content-type'], body }
  }))
  const accepted = results.filter((r) => r.status === 202)
  const shed = results.filter((r) => r.status === 503)
  t.equal(accepted.length + shed.length, burstSize, 'every answer is 202 or 503')
  t.ok(shed.length > 0, `${shed.length} shed`)
  t.ok(accepted.length > 0, `${accepted.length} accepted`)
  for (const r of shed) {
    t.equal(r.body.code, 'overloaded')
    t.equal(r.retryAfter, '1')
    t.match(String(r.contentType), /^application\/problem\+json/)
  }
  const stored = async (id: string): Promise<number> => {
    const res = await admin.request({ path: `/internal/payments/m1/${id}`, method: 'GET', headers: { 'x-ringpay-internal-token': token } })
    await res.body.dump()
    return res.statusCode
  }
  for (const r of accepted) t.equal(await stored(r.id), 200, `${r.id} accepted and stored`)
  for (const r of shed) t.equal(await stored(r.id), 404, `${r.id} shed and not stored`)
  t.equal(child.exitCode, null, 'the node is still running')
})
