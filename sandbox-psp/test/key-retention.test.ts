// Idempotency key retention (issue #16): past idempotencyKeyRetentionMs the sandbox forgets a key,
// as real PSPs do after ~24 h, and the same key makes a second charge; the search by reference
// still finds the first, which is what a re-drive asks before it charges.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createLogger } from '../../lib/log.ts'
import { startSandboxPsp } from '../psp.ts'

const secretKey = 'sk_test_retention_0123456789'
const psp = await startSandboxPsp({ dataDir: mkdtempSync(join(tmpdir(), 'psp-retention-')), secretKey, webhookSecret: 'whsec_test_retention_0123' }, createLogger('psp-test', {}))
t.teardown(() => psp.stop())

async function api (method: string, path: string, body?: unknown, key?: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`${psp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${secretKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(key !== undefined ? { 'idempotency-key': key } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  return { status: res.status, body: await res.json() }
}

const charge = { amount: 500, currency: 'EUR', payment_method: 'pm_card_visa', reference: 'co_ret', merchant_id: 'm' }

t.test('within the retention a key answers its charge; past it a new charge; the reference finds both, oldest first', async (t) => {
  const first = await api('POST', '/v1/charges', charge, 'co_ret')
  t.equal(first.status, 201)
  t.equal((await api('POST', '/v1/charges', charge, 'co_ret')).body.id, first.body.id, 'replayed while remembered')
  // Charges are dated in whole seconds: a retention of 1 ms is passed once the second turns.
  await api('PUT', '/admin/config', { idempotencyKeyRetentionMs: 1 })
  t.teardown(() => api('PUT', '/admin/config', { idempotencyKeyRetentionMs: 0 }))
  const deadline = Date.now() + 3_000
  let listed = (await api('GET', '/v1/charges?idempotency_key=co_ret')).body.data
  while (listed.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    listed = (await api('GET', '/v1/charges?idempotency_key=co_ret')).body.data
  }
  t.same(listed, [], 'the key is forgotten by the list by key')
  const second = await api('POST', '/v1/charges', charge, 'co_ret')
  t.equal(second.status, 201, 'a forgotten key charges again: what a re-drive must never do')
  t.not(second.body.id, first.body.id)
  const byReference = (await api('GET', '/v1/charges?reference=co_ret')).body.data
  t.same(byReference.map((c: any) => c.id), [first.body.id, second.body.id], 'the reference finds every charge, the first first')
  t.equal((await api('GET', '/admin/charges?idempotency_key=co_ret')).body.data.length, 2, 'and the admin index counts the double charge')
})

t.test('the reference search keeps every charge whatever its key, and merchant_id narrows it to one merchant\'s (#17 part 5)', async (t) => {
  const a = await api('POST', '/v1/charges', { ...charge, reference: 'co_shared_ref', merchant_id: 'm_a' }, 'm_a/co_shared_ref')
  const b = await api('POST', '/v1/charges', { ...charge, reference: 'co_shared_ref', merchant_id: 'm_b' }, 'm_b/co_shared_ref')
  t.equal(a.status, 201)
  t.equal(b.status, 201)
  const all = (await api('GET', '/v1/charges?reference=co_shared_ref')).body.data
  t.same(all.map((c: any) => c.id), [a.body.id, b.body.id], 'keys that are not the reference: both found by it')
  t.same((await api('GET', '/v1/charges?reference=co_shared_ref&merchant_id=m_b')).body.data.map((c: any) => c.id), [b.body.id], 'one merchant\'s')
  t.same((await api('GET', '/v1/charges?reference=co_shared_ref&merchant_id=m_c')).body.data, [], 'none of another merchant')
})
