// GET ?wait_ms returns as soon as the payment changes, or with the current state at the deadline.
// Payments here stop at requires_action (the processor takes them that far), so nothing else
// moves them while a test waits.

import t from 'tap'
import { call, eventually, getInternal, getPayment, transition } from '../helpers/api.ts'
import { createSettledForAction } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo

t.test('returns when the version changes', async (t) => {
  const { id, version } = await createSettledForAction('lp')
  const ownerId = (await getInternal(stack.internalUrl, id)).body.node_id
  const owner = stack.nodes.find((node) => node.id === ownerId)!
  const waitersBefore = await longPollWaiters(owner.adminPort)
  const startedAt = Date.now()
  // after_version: correct whichever lands first; the metric wait makes the poll park first.
  const waiting = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${version}`)
  await eventually(async () => (await longPollWaiters(owner.adminPort)) > waitersBefore ? true : undefined,
    5_000, 'the long-poll to park on its node')
  const changed = await transition(stack.internalUrl, id, { to: 'canceled', expected_version: version, actor: 'test' })
  t.equal(changed.status, 200)
  const res = await waiting
  t.equal(res.status, 200)
  t.equal(res.body.status, 'canceled')
  t.equal(res.body.version, version + 1)
  t.ok(Date.now() - startedAt < 10_000, 'returned on the change, long before the wait ended')
})

async function longPollWaiters (adminPort: number): Promise<number> {
  const metrics = await call(`http://127.0.0.1:${adminPort}/metrics`)
  const waiters = /^ringpay_long_poll_waiters\{[^}]*\} (\d+)/m.exec(metrics.text)
  return waiters === null ? 0 : Number(waiters[1])
}

t.test('returns the current state at the deadline when nothing changes', async (t) => {
  const { id, version } = await createSettledForAction('lp')
  const startedAt = Date.now()
  const res = await getPayment(stack.publicUrl, key, id, '?wait_ms=300')
  const waitedMs = Date.now() - startedAt
  t.equal(res.status, 200)
  t.equal(res.body.version, version)
  t.ok(waitedMs >= 290, `waited ${waitedMs} ms`)
})

t.test('after_version below the current version returns at once', async (t) => {
  const { id, version } = await createSettledForAction('lp')
  const startedAt = Date.now()
  const res = await getPayment(stack.publicUrl, key, id, '?wait_ms=20000&after_version=1')
  t.equal(res.body.version, version)
  t.ok(Date.now() - startedAt < 5_000)
})

t.test('a move to processing followed by the outcome wakes the poll once, with the outcome', async (t) => {
  const { id, version } = await createSettledForAction('lp')
  const ownerId = (await getInternal(stack.internalUrl, id)).body.node_id
  const owner = stack.nodes.find((node) => node.id === ownerId)!
  const waitersBefore = await longPollWaiters(owner.adminPort)
  const waiting = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${version}`)
  await eventually(async () => (await longPollWaiters(owner.adminPort)) > waitersBefore ? true : undefined,
    5_000, 'the long-poll to park on its node')
  t.equal((await transition(stack.internalUrl, id, { to: 'processing', expected_version: version, actor: 'test' })).status, 200)
  t.equal((await transition(stack.internalUrl, id, { to: 'succeeded', expected_version: version + 1, actor: 'test', psp_reference: 'ch_lp' }, stack.internalTokens.processor)).status, 200)
  const res = await waiting
  t.match(res.body, { status: 'succeeded', version: version + 2 }, 'not woken by the claim in between')
})

t.test('a processing state that lasts wakes the poll after about a second', async (t) => {
  const { id, version } = await createSettledForAction('lp')
  const startedAt = Date.now()
  const waiting = getPayment(stack.publicUrl, key, id, `?wait_ms=20000&after_version=${version}`)
  t.equal((await transition(stack.internalUrl, id, { to: 'processing', expected_version: version, actor: 'test' })).status, 200)
  const res = await waiting
  t.match(res.body, { status: 'processing', version: version + 1 })
  t.ok(Date.now() - startedAt < 10_000, 'long before the wait ended')
})
