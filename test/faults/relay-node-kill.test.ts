// kill -9 a node while its relay is publishing under load; after the restart no event is missing:
// every payment the node acknowledged (and every one it stored without answering) is on the
// topic. Runs serially: it kills a node of the shared stack. Payments go through nginx, so each
// lives on the node that owns its id (the processors find them there).

import t from 'tap'
import { createPayment, getFromNode } from '../helpers/api.ts'
import { EventCollector, letterPrefix, nodeMetric } from '../helpers/events.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const apiKey = stack.apiKeys.merchant_demo
const victim = stack.nodes[0]!
const connections = 32
/** Kill once this many payments were acknowledged (about a third of them on the victim). */
const acknowledgedBeforeKill = 3_000
const loadDeadlineMs = 60_000
const eventsDeadlineMs = 120_000
const pollIntervalMs = 20

t.test('kill -9 mid-publish: after restart no event is missing', async (t) => {
  const prefix = letterPrefix('kill')
  const acknowledged: string[] = []
  const unknown: string[] = []
  let sent = 0
  let stop = false
  const load = Promise.all(Array.from({ length: connections }, async () => {
    while (!stop) {
      const id = `${prefix}-${sent++}`
      try {
        const res = await createPayment(stack.publicUrl, apiKey, id)
        if (res.status === 202) acknowledged.push(id)
        else unknown.push(id)
      } catch {
        unknown.push(id)
      }
    }
  }))
  t.teardown(async () => { await control(`/nodes/${victim.id}/start`).catch(() => undefined) })

  const loadDeadline = Date.now() + loadDeadlineMs
  let lagAtKill = 0
  while (acknowledged.length < acknowledgedBeforeKill || (lagAtKill = await nodeMetric(victim.adminPort, 'ringpay_relay_lag_events')) === 0) {
    if (Date.now() > loadDeadline) throw new Error(`load did not get going: ${acknowledged.length} acknowledged`)
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
  await control(`/nodes/${victim.id}/kill`)
  stop = true
  await load
  t.comment(`killed with ${lagAtKill} unpublished entries; ${acknowledged.length} acknowledged, ${unknown.length} unanswered`)
  t.ok(lagAtKill > 0, 'the relay had entries in flight or queued at the kill')
  await control(`/nodes/${victim.id}/start`)

  // Unanswered requests may or may not have reached the disk; those that did must be published too.
  const stored = [...acknowledged]
  for (const id of unknown) {
    for (const node of stack.nodes) {
      if ((await getFromNode(node.adminPort, stack.internalTokens.audit, id)).status === 200) {
        stored.push(id)
        break
      }
    }
  }
  const expected = new Set(stored)
  const collector = await EventCollector.start((key) => key.startsWith(prefix))
  t.teardown(() => collector.close())
  const createdFor = (): Set<string> => new Set(collector.events.filter((e) => e.event.type === 'payment.created').map((e) => e.key))
  await collector.waitFor(() => [...expected].every((id) => createdFor().has(id)), eventsDeadlineMs, 'every stored payment\'s event')
  const missing = stored.filter((id) => !createdFor().has(id))
  t.same(missing, [], 'no event missing after the restart')
  t.equal(collector.events.filter((e) => e.event.type === 'payment.created').length, createdFor().size, 'one created event per payment after dedup')
  t.comment(`${collector.received} copies received for ${collector.events.length} events (${collector.received - collector.events.length} re-sent after the kill)`)
  const lagDeadline = Date.now() + eventsDeadlineMs
  while (await nodeMetric(victim.adminPort, 'ringpay_relay_lag_events') !== 0) {
    if (Date.now() > lagDeadline) throw new Error('the restarted relay did not catch up')
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
  }
  t.pass('the restarted relay caught up')
})
