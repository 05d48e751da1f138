// nginx's consistent hash pins each checkout id to one node.

import t from 'tap'
import { createPayment, getFromNode, getInternal, getPayment, newCheckoutId } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo

t.test('each payment lives on exactly one node, the same one every time', async (t) => {
  const ids = Array.from({ length: 30 }, () => newCheckoutId('route'))
  await Promise.all(ids.map(async (id) => t.equal((await createPayment(stack.publicUrl, key, id)).status, 202)))
  const owners = new Map<string, number>()
  for (const id of ids) {
    const holders: string[] = []
    for (const node of stack.nodes) {
      const res = await getFromNode(node.adminPort, stack.internalTokens.audit, id)
      if (res.status === 200) holders.push(node.id)
    }
    t.equal(holders.length, 1, `${id} is on exactly one node: ${holders.join(',')}`)
    const owner = holders[0]!
    owners.set(owner, (owners.get(owner) ?? 0) + 1)
    // Repeated reads, by header and by path, through both listeners, reach that node.
    for (let i = 0; i < 3; i++) {
      t.equal((await getInternal(stack.internalUrl, id)).body.node_id, owner)
      t.equal((await getPayment(stack.publicUrl, key, id)).status, 200)
    }
  }
  t.equal(owners.size, stack.nodes.length, `keys spread over every node: ${JSON.stringify([...owners])}`)
})
