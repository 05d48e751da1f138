// The outcome check's arithmetic against fake node admin ports: a lost id, an id on two nodes,
// an id acknowledged twice, a node answering errors, and sampling. Also the small stats helpers.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { checkNodesOutcome, sample } from '../lib/outcome.ts'
import { median, percentileSorted, perSecondSeries } from '../lib/stats.ts'

const token = 'test-internal-token-0123456789'

async function fakeNode (t: { teardown: (fn: () => void) => void }, ids: string[], failWith?: number): Promise<string> {
  const known = new Set(ids)
  const server: Server = createServer((req, res) => {
    const id = (req.url ?? '').replace('/internal/payments/m/', '')
    if (req.headers['x-ringpay-internal-token'] !== token) return res.writeHead(401).end()
    if (failWith !== undefined) return res.writeHead(failWith).end()
    if (!known.has(id)) return res.writeHead(404).end('{}')
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ checkout_id: id, status: 'pending' }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close(); server.closeAllConnections() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('lost, duplicated across nodes, acknowledged twice', async (t) => {
  const n1 = await fakeNode(t, ['x1', 'x2'])
  const n2 = await fakeNode(t, ['x2', 'x3'])
  const report = await checkNodesOutcome({
    merchantId: 'm',
    target: 'c',
    ackedIds: ['x1', 'x2', 'x3', 'x4', 'x1'],
    nodes: [{ id: 'n1', adminOrigin: n1 }, { id: 'n2', adminOrigin: n2 }],
    internalToken: token,
    sampleMax: 0,
  })
  t.equal(report.acked, 5)
  t.equal(report.distinct, 4)
  t.equal(report.checked, 4)
  t.equal(report.sampled, false)
  t.equal(report.lost, 1)
  t.same(report.examples.lost, ['x4'])
  t.equal(report.duplicated, 2, 'x2 on two nodes, x1 acknowledged twice')
  t.same(report.examples.duplicated.sort(), ['x1', 'x2'])
  t.same(report.foundPerNode, { n1: 2, n2: 2 })
  t.equal(report.checkErrors, 0)
  t.equal(report.passed, false)
})

t.test('all present: passes; a sample checks only its size', async (t) => {
  const ids = Array.from({ length: 50 }, (_, i) => `id${i}`)
  const n1 = await fakeNode(t, ids.slice(0, 25))
  const n2 = await fakeNode(t, ids.slice(25))
  const nodes = [{ id: 'n1', adminOrigin: n1 }, { id: 'n2', adminOrigin: n2 }]
  const all = await checkNodesOutcome({ target: 'c', merchantId: 'm', ackedIds: ids, nodes, internalToken: token, sampleMax: 0 })
  t.equal(all.passed, true)
  t.equal(all.checked, 50)
  const sampled = await checkNodesOutcome({ target: 'c', merchantId: 'm', ackedIds: ids, nodes, internalToken: token, sampleMax: 10 })
  t.equal(sampled.checked, 10)
  t.equal(sampled.sampled, true)
  t.equal(sampled.passed, true)
})

t.test('a node that cannot answer fails the check (unknown is not "found")', async (t) => {
  const n1 = await fakeNode(t, ['a'])
  const n2 = await fakeNode(t, [], 500)
  const report = await checkNodesOutcome({
    merchantId: 'm',
    target: 'c', ackedIds: ['a'], nodes: [{ id: 'n1', adminOrigin: n1 }, { id: 'n2', adminOrigin: n2 }], internalToken: token, sampleMax: 0,
  })
  t.equal(report.checkErrors, 1)
  t.equal(report.lost, 0)
  t.equal(report.passed, false)
})

t.test('sample draws distinct items', (t) => {
  const items = Array.from({ length: 100 }, (_, i) => i)
  const s = sample(items, 30)
  t.equal(s.length, 30)
  t.equal(new Set(s).size, 30)
  t.same(sample(items, 200).length, 100)
  t.end()
})

t.test('stats helpers', (t) => {
  const sorted = Float64Array.from({ length: 1000 }, (_, i) => i + 1)
  t.equal(percentileSorted(sorted, 50), 500)
  t.equal(percentileSorted(sorted, 99), 990)
  t.equal(percentileSorted(sorted, 99.9), 999)
  t.equal(percentileSorted(sorted, 100), 1000)
  t.ok(Number.isNaN(percentileSorted(new Float64Array(0), 50)))
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 2, 3]), 2.5)
  t.equal(median([Number.NaN, 5]), 5)
  const series = perSecondSeries(
    Float64Array.from([100_000, 900_000, 1_500_000, 2_100_000, 2_200_000]),
    Float64Array.from([1000, 3000, 2000, -1, 5000]),
    Uint16Array.from([202, 202, 503, 0, 202]),
    5, 2,
  )
  t.same(series.map((p) => [p.second, p.responses, p.non2xx]), [[0, 2, 0], [1, 1, 1]], 'whole seconds only; no-answer skipped')
  t.equal(series[0]?.p50Ms, 1)
  t.equal(series[0]?.p99Ms, 3)
  t.end()
})
