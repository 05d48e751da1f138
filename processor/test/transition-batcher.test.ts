// The per-node transition batcher: one request in flight per node, what arrives meanwhile goes in
// the next one, bounded per request and per node; a failed request fails each of its items.

import t from 'tap'
import { TransitionBatcher, TransitionQueueFull, type ItemAnswer } from '../transition-batcher.ts'

interface Sent { routingId: string, ids: string[], answer: (answers?: ItemAnswer[]) => void, fail: (error: Error) => void }

/** A batcher whose sends wait until the test answers them. */
function scripted (options: { itemsPerBatchMax?: number, itemsQueuedPerNodeMax?: number } = {}) {
  const sent: Sent[] = []
  const batcher = new TransitionBatcher({
    itemsPerBatchMax: options.itemsPerBatchMax ?? 100,
    itemsQueuedPerNodeMax: options.itemsQueuedPerNodeMax ?? 1_000,
    send: (routingId, items) => new Promise((resolve, reject) => {
      const ids = items.map((item) => String(item.checkout_id))
      sent.push({
        routingId,
        ids,
        answer: (answers) => resolve(answers ?? ids.map((id) => ({ status: 200, body: { id } }))),
        fail: reject,
      })
    }),
  })
  return { batcher, sent }
}

const item = (id: string): Record<string, unknown> => ({ checkout_id: id, to: 'processing', expected_version: 1, actor: 't' })
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('an idle node gets its item at once; items arriving meanwhile share the next request', async (t) => {
  const { batcher, sent } = scripted()
  const first = batcher.submit('n1', item('a'))
  await tick()
  t.same(sent.map((s) => s.ids), [['a']], 'sent at once, alone')
  const later = ['b', 'c', 'd'].map((id) => batcher.submit('n1', item(id)))
  await tick()
  t.equal(sent.length, 1, 'nothing more while the first is in flight')
  sent[0]!.answer()
  t.same(await first, { status: 200, body: { id: 'a' } })
  await tick()
  t.same(sent[1]!.ids, ['b', 'c', 'd'], 'gathered into one request')
  t.equal(sent[1]!.routingId, 'b', 'routed by its first item')
  sent[1]!.answer()
  t.same((await Promise.all(later)).map((a) => a.body.id), ['b', 'c', 'd'], 'each gets its own answer, in order')
})

t.test('nodes do not wait for each other', async (t) => {
  const { batcher, sent } = scripted()
  const one = batcher.submit('n1', item('a'))
  const two = batcher.submit('n2', item('b'))
  await tick()
  t.same(sent.map((s) => s.ids), [['a'], ['b']])
  sent[1]!.answer()
  t.equal((await two).body.id, 'b', 'n2 answered while n1 is still in flight')
  sent[0]!.answer()
  await one
})

t.test('a request holds at most itemsPerBatchMax items', async (t) => {
  const { batcher, sent } = scripted({ itemsPerBatchMax: 2 })
  const all = ['a', 'b', 'c', 'd', 'e'].map((id) => batcher.submit('n1', item(id)))
  for (let round = 0; round < 3; round++) {
    await tick()
    sent[round]!.answer()
  }
  await Promise.all(all)
  t.same(sent.map((s) => s.ids), [['a'], ['b', 'c'], ['d', 'e']])
})

t.test('a failed request fails each of its items, and the node carries on', async (t) => {
  const { batcher, sent } = scripted()
  const first = batcher.submit('n1', item('a'))
  await tick()
  const second = batcher.submit('n1', item('b'))
  sent[0]!.fail(new Error('node down'))
  await t.rejects(first, /node down/)
  await tick()
  sent[1]!.answer()
  t.equal((await second).body.id, 'b')
})

t.test('past itemsQueuedPerNodeMax a caller is refused, not queued', async (t) => {
  const { batcher, sent } = scripted({ itemsPerBatchMax: 1, itemsQueuedPerNodeMax: 2 })
  const inFlight = batcher.submit('n1', item('a'))
  await tick()
  const queued = [batcher.submit('n1', item('b')), batcher.submit('n1', item('c'))]
  await t.rejects(batcher.submit('n1', item('d')), TransitionQueueFull)
  for (let round = 0; round < 3; round++) {
    sent[round]!.answer()
    await tick()
  }
  await Promise.all([inFlight, ...queued])
  t.same(sent.map((s) => s.ids), [['a'], ['b'], ['c']])
})
