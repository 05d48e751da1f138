// Issue #18: the stack's Prometheus evaluates ops/prometheus/alerts.yml against the real
// components. A payment node and every processor are stopped together; RingpayNodeDown (for that
// node) and RingpayNoProcessor must both fire, then both components come back. Runs serially: it
// stops shared components, and starts them again (and waits for them) before it ends.

import t from 'tap'
import { call, eventually } from '../helpers/api.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
/** `for: 10s`, scraped and evaluated every 5 s: firing within ~20 s; the margin is for a busy machine. */
const firingDeadlineMs = 60_000

async function firing (): Promise<Array<{ labels: Record<string, string>, state: string }>> {
  const res = await call(`${stack.prometheus!.url}/api/v1/alerts`)
  if (res.status !== 200) throw new Error(`prometheus /api/v1/alerts answered ${res.status}`)
  return (res.body.data.alerts as Array<{ labels: Record<string, string>, state: string }>).filter((a) => a.state === 'firing')
}

t.test('a node and every processor down: RingpayNodeDown and RingpayNoProcessor fire', async (t) => {
  const node = stack.nodes.at(-1)!
  t.same((await firing()).map((a) => a.labels.alertname).filter((n) => n === 'RingpayNodeDown' || n === 'RingpayNoProcessor'), [], 'neither fires before')
  await Promise.all([control(`/nodes/${node.id}/stop`), ...stack.processors.map((p) => control(`/services/${p.id}/stop`))])
  try {
    const alerts = await eventually(async () => {
      const now = await firing()
      const nodeDown = now.some((a) => a.labels.alertname === 'RingpayNodeDown' && a.labels.instance === node.id)
      const noProcessor = now.some((a) => a.labels.alertname === 'RingpayNoProcessor')
      return nodeDown && noProcessor ? now : undefined
    }, firingDeadlineMs, 'both alerts to fire')
    const nodeDown = alerts.find((a) => a.labels.alertname === 'RingpayNodeDown')!
    t.match(nodeDown.labels, { severity: 'page', job: 'payment-nodes', instance: node.id })
    t.notOk(alerts.some((a) => a.labels.alertname === 'RingpayNodeDown' && a.labels.instance !== node.id), 'only the stopped node is reported down')
    t.ok(alerts.some((a) => a.labels.alertname === 'RingpayNoProcessor' && a.labels.severity === 'page'))
  } finally {
    await Promise.all([control(`/nodes/${node.id}/start`), ...stack.processors.map((p) => control(`/services/${p.id}/start`))])
  }
  await eventually(async () => ((await firing()).some((a) => a.labels.alertname === 'RingpayNodeDown' || a.labels.alertname === 'RingpayNoProcessor') ? undefined : true),
    firingDeadlineMs, 'both alerts to resolve once the components are back')
})
