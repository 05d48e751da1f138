// Group commit during the simulated latency (charge-service.ts, store.ts): a new charge is written
// while its latency runs, so the charges of one latency window share fsynced batches; still, none
// is answered before its latency is over nor before it is on disk.

import t from 'tap'
import { charge, chargeBody, startPsp } from './helpers.ts'

t.test('concurrent charges share batches written during their latency, and are answered after it', async (t) => {
  const latencyMs = 200
  const chargeCount = 10
  const psp = await startPsp(t, { runtime: { latencyMedianMs: latencyMs, latencyP99Ms: latencyMs } })
  const { store } = psp.context
  const batches: number[] = []
  const observe = store.onBatchWritten
  store.onBatchWritten = (writes, durationMs) => {
    batches.push(writes)
    observe?.(writes, durationMs)
  }
  // Arrivals spread over half the latency: written after their latency, each would be its own batch.
  const spacingMs = latencyMs / 2 / chargeCount
  const replies = await Promise.all(Array.from({ length: chargeCount }, async (_, i) => {
    await new Promise((resolve) => setTimeout(resolve, i * spacingMs))
    const sentAtMs = Date.now()
    const reply = await charge(psp, chargeBody())
    return { reply, elapsedMs: Date.now() - sentAtMs }
  }))
  for (const { reply, elapsedMs } of replies) {
    t.equal(reply.status, 201)
    t.ok(elapsedMs >= latencyMs - 5, `answered after the latency (${elapsedMs} ms)`)
    t.same(store.getCharge(reply.body.id), reply.body, 'on disk when answered')
  }
  t.ok(batches.length <= chargeCount / 3, `${chargeCount} charges in ${batches.length} batches (${batches.join(', ')} writes)`)
  t.equal(batches.reduce((a, b) => a + b, 0), chargeCount)
})
