// GET ?wait_ms returns as soon as the payment changes, or with the current state at the deadline.

import t from 'tap'
import { call, createPayment, eventually, getInternal, getPayment, newCheckoutId, transition } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo

t.test('returns when the version changes', async (t) => {
  const id = newCheckoutId('lp')
  t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)
  const ownerId = (await getInternal(stack.internalUrl, id)).body.node_id
  const owner = stack.nodes.find((node) => node.id === ownerId)!
  const startedAt = Date.now()
  // after_version=1: correct whichever lands first; the metric wait makes the poll park first.
  const waiting = getPayment(stack.publicUrl, key, id, '?wait_ms=20000&after_version=1')
  await eventually(async () => {
    const metrics = await call(`http://127.0.0.1:${owner.adminPort}/metrics`)
    const waiters = /^ringpay_long_poll_waiters\{[^}]*\} (\d+)/m.exec(metrics.text)
    return waiters !== null && Number(waiters[1]) > 0 ? true : undefined
  }, 5_000, 'the long-poll to park on its node')
  const changed = await transition(stack.internalUrl, id, { to: 'processing', expected_version: 1, actor: 'processor' })
  t.equal(changed.status, 200)
  const res = await waiting
  t.equal(res.status, 200)
  t.equal(res.body.status, 'processing')
  t.equal(res.body.version, 2)
  t.ok(Date.now() - startedAt < 10_000, 'returned on the change, long before the wait ended')
})

t.test('returns the current state at the deadline when nothing changes', async (t) => {
  const id = newCheckoutId('lp')
  t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)
  const startedAt = Date.now()
  const res = await getPayment(stack.publicUrl, key, id, '?wait_ms=300')
  const waitedMs = Date.now() - startedAt
  t.equal(res.status, 200)
  t.equal(res.body.version, 1)
  t.ok(waitedMs >= 290, `waited ${waitedMs} ms`)
})

t.test('after_version below the current version returns at once', async (t) => {
  const id = newCheckoutId('lp')
  t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)
  await transition(stack.internalUrl, id, { to: 'processing', expected_version: 1, actor: 'processor' })
  const startedAt = Date.now()
  const res = await getPayment(stack.publicUrl, key, id, '?wait_ms=20000&after_version=1')
  t.equal(res.body.version, 2)
  t.ok(Date.now() - startedAt < 5_000)
})
