import { Histogram, Registry } from 'prom-client'
import t from 'tap'
import { labeledChildrenCachedMax, RequestDurationRecorder } from '../request-duration.ts'

function histogram (): { registry: Registry, histogram: Histogram<'route' | 'method' | 'status'> } {
  const registry = new Registry()
  const h = new Histogram({ name: 'test_duration_seconds', help: 'h', labelNames: ['route', 'method', 'status'], buckets: [0.01, 1], registers: [registry] })
  return { registry, histogram: h }
}

async function countsByLabels (h: Histogram<'route' | 'method' | 'status'>): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const v of (await h.get()).values) {
    if (v.metricName === 'test_duration_seconds_count') counts.set(`${v.labels.route} ${v.labels.method} ${v.labels.status}`, v.value)
  }
  return counts
}

t.test('each observation lands under its own labels, cached or not', async (t) => {
  const { histogram: h } = histogram()
  const recorder = new RequestDurationRecorder(h)
  recorder.observe('/payments', 'POST', 202, 0.001)
  recorder.observe('/payments', 'POST', 202, 0.002)
  recorder.observe('/payments', 'POST', 400, 0.5)
  recorder.observe('/payments/:id', 'GET', 'none', 2)
  const counts = await countsByLabels(h)
  t.equal(counts.get('/payments POST 202'), 2)
  t.equal(counts.get('/payments POST 400'), 1)
  t.equal(counts.get('/payments/:id GET none'), 1)
  const sum = (await h.get()).values.find((v) => v.metricName === 'test_duration_seconds_sum' && v.labels.status === '202')
  t.ok(sum !== undefined && Math.abs(sum.value - 0.003) < 1e-9, 'the sum adds the cached child\'s observations')
})

t.test('past the cache bound, observations are still recorded', async (t) => {
  const { histogram: h } = histogram()
  const recorder = new RequestDurationRecorder(h)
  const routes = labeledChildrenCachedMax + 10
  for (let i = 0; i < routes; i++) recorder.observe(`/r${i}`, 'GET', 200, 0.001)
  for (let i = 0; i < routes; i++) recorder.observe(`/r${i}`, 'GET', 200, 0.001)
  const counts = await countsByLabels(h)
  t.equal(counts.size, routes)
  t.ok([...counts.values()].every((n) => n === 2), 'every label set counted twice')
})
