// Batched transitions (`POST /internal/transitions`, what processors send per node) through
// nginx's internal listener, routed by the first item's checkout id: each item is applied or
// refused exactly as its single call would be, and the answer keeps the items' order.

import t from 'tap'
import { internalTokenHeader } from '../../lib/internal-credentials.ts'
import { call, getInternal, newCheckoutId, opsToken } from '../helpers/api.ts'
import { createSettledForAction } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const busyRetriesMax = 20
const busyRetryDelayMs = 25

function sendBatch (routingId: string, transitions: unknown[], contentType = 'application/json', token = opsToken()) {
  return call(`${stack.internalUrl}/internal/transitions`, {
    method: 'POST',
    headers: { 'content-type': contentType, 'x-payment-checkout-id': routingId, [internalTokenHeader]: token },
    body: JSON.stringify({ transitions }),
  })
}

/** Two payments at requires_action on the same node (six spread over three nodes always give two). */
async function twoOnOneNode (): Promise<Array<{ id: string, version: number }>> {
  const created = await Promise.all(Array.from({ length: stack.nodes.length * 2 }, () => createSettledForAction('tb')))
  const byNode = new Map<string, Array<{ id: string, version: number }>>()
  for (const payment of created) {
    const node = (await getInternal(stack.internalUrl, payment.id)).body.node_id as string
    byNode.set(node, [...(byNode.get(node) ?? []), payment])
  }
  const pair = [...byNode.values()].find((list) => list.length >= 2)
  if (pair === undefined) throw new Error('no node got two of the payments')
  return pair.slice(0, 2)
}

t.test('each item is applied or refused as its own call would be, in order', async (t) => {
  const [a, b] = await twoOnOneNode()
  const unknown = newCheckoutId('tb')
  const items = [
    { merchant_id: 'merchant_demo', checkout_id: a!.id, to: 'canceled', expected_version: a!.version, actor: 'test' },
    { merchant_id: 'merchant_demo', checkout_id: b!.id, to: 'failed', expected_version: b!.version - 1, actor: 'test' },
    { merchant_id: 'merchant_demo', checkout_id: unknown, to: 'processing', expected_version: 1, actor: 'test' },
  ]
  // A late webhook of the processor's own run may still hold an id for a moment.
  let res = await sendBatch(a!.id, items)
  for (let attempt = 0; attempt < busyRetriesMax && res.body?.results?.some((r: any) => r.error?.code === 'idempotency_key_in_use'); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, busyRetryDelayMs))
    res = await sendBatch(a!.id, items)
  }
  t.equal(res.status, 200)
  t.equal(res.body.results.length, 3)
  const [first, second, third] = res.body.results
  t.match(first, { payment: { checkout_id: a!.id, status: 'canceled', version: a!.version + 1 } }, 'applied')
  t.match(second, { error: { status: 409, code: 'stale_version', current_status: 'requires_action', current_version: b!.version } }, 'stale, nothing changed')
  t.match(third, { error: { status: 404, code: 'payment_not_found' } }, 'not on this node')
  t.equal((await getInternal(stack.internalUrl, b!.id)).body.version, b!.version, 'the refused item changed nothing')
  t.match((await getInternal(stack.internalUrl, a!.id)).body, { status: 'canceled', version: a!.version + 1 })
})

t.test('a malformed item refuses the whole batch before anything is applied', async (t) => {
  const { id, version } = await createSettledForAction('tb')
  const res = await sendBatch(id, [
    { merchant_id: 'merchant_demo', checkout_id: id, to: 'canceled', expected_version: version, actor: 'test' },
    { merchant_id: 'merchant_demo', checkout_id: 'not a valid id!', to: 'canceled', expected_version: 1, actor: 'test' },
  ])
  t.equal(res.status, 400)
  t.equal(res.body.code, 'validation_failed')
  t.equal((await getInternal(stack.internalUrl, id)).body.version, version, 'the valid item was not applied either')
  const unknownField = await sendBatch(id, [{ merchant_id: 'merchant_demo', checkout_id: id, to: 'canceled', expected_version: version, actor: 'test', amount: 5 }])
  t.equal(unknownField.status, 400)
  t.same(unknownField.body.errors.map((e: { field: string }) => e.field), ['amount'])
  // An item names its payment by merchant and checkout id (issue #17 part 5): without the merchant it is malformed.
  const noMerchant = await sendBatch(id, [{ checkout_id: id, to: 'canceled', expected_version: version, actor: 'test' }])
  t.equal(noMerchant.status, 400)
  t.same(noMerchant.body.errors.map((e: { field: string }) => e.field), ['transitions[0].merchant_id'])
  t.equal((await getInternal(stack.internalUrl, id)).body.version, version, 'nothing applied')
})

t.test('batch bounds and shape', async (t) => {
  const id = newCheckoutId('tb')
  const empty = await sendBatch(id, [])
  t.equal(empty.status, 400, 'an empty batch')
  const item = { merchant_id: 'merchant_demo', checkout_id: id, to: 'processing', expected_version: 1, actor: 'test' }
  const tooMany = await sendBatch(id, Array.from({ length: 257 }, () => item))
  t.equal(tooMany.status, 400, 'more items than transitionsPerBatchMax')
  const wrongType = await sendBatch(id, [item], 'text/plain')
  t.equal(wrongType.status, 415)
  const noToken = await call(`http://127.0.0.1:${stack.nodes[0]!.adminPort}/internal/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ transitions: [item] }),
  })
  t.match({ status: noToken.status, code: noToken.body?.code }, { status: 401, code: 'internal_unauthorized' }, 'the node refuses a batch without a service token')
})
