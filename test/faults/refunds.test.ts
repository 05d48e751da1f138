// Refunds under faults, on the shared stack (serial: these change the PSP's global switches and
// kill the processor): kill -9 of the processor while refunds are at the PSP, a PSP answering
// half of all calls 5xx, and refund webhooks dropped (the watchdog settles the refund). Every refund still ends on its node equal to Postgres and the PSP, with
// at most one PSP refund per refund id and never more refunded than captured (the outcome check).

import t from 'tap'
import { checkSystemOutcome, describeSystemOutcome } from '../../bench/lib/system-outcome.ts'
import { eventually, refundPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, pspRefunds, refundSettles, pspConfigControl } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 90_000
t.teardown(closeDb)

const { original, set: setPsp, restore: restorePsp } = await pspConfigControl(['latencyMedianMs', 'latencyP99Ms', 'error5xxRate'])

async function succeededPayments (count: number, prefix: string): Promise<string[]> {
  const ids = await Promise.all(Array.from({ length: count }, () => createWith('pm_card_visa', prefix)))
  for (const id of ids) {
    const node = await nodeReaches(id, settleDeadlineMs)
    if (node.status !== 'succeeded') throw new Error(`${id} ended ${node.status}`)
  }
  return ids
}

/** A refund of 1000 of the payment's 1999; its refund id. */
async function refund (id: string): Promise<string> {
  const res = await refundPayment(stack.publicUrl, key, id, `fault-${id}`, { amount: 1000 })
  if (res.status !== 202) throw new Error(`refund of ${id}: ${res.status} ${res.text}`)
  return res.body.id
}

async function assertOutcome (t: any, ids: readonly string[], refunds: number): Promise<void> {
  const report = await checkSystemOutcome({ system: stack, merchantId: 'merchant_demo', acked: ids, settleDeadlineMs })
  t.equal(report.refunds, refunds, 'every refund checked')
  t.equal(report.passed, true, describeSystemOutcome(report))
}

t.test('kill -9 of the processor mid-refund: every refund settles once at the PSP', async (t) => {
  const ids = await succeededPayments(12, 'rfkill')
  const refundIds: string[] = []
  let killed = false
  await setPsp({ latencyMedianMs: 300, latencyP99Ms: 800 })
  try {
    // Refunds in flight at the PSP when the processor dies; the rest asked for while it is dead,
    // so they cannot be refunded before it is back (as in processing.test.ts's charge case).
    for (const id of ids.slice(0, 4)) refundIds.push(await refund(id))
    await eventually(async () => (await pspRefunds(refundIds[0]!)).length > 0 ? true : undefined, settleDeadlineMs, 'the first PSP refund')
    await control('/services/p1/kill')
    killed = true
    for (const id of ids.slice(4)) refundIds.push(await refund(id))
    let refunded = 0
    for (const refundId of refundIds) refunded += (await pspRefunds(refundId)).length
    t.ok(refunded > 0 && refunded < refundIds.length, `killed mid-way: ${refunded} of ${refundIds.length} refunded at the PSP`)
  } finally {
    if (killed) await control('/services/p1/start')
    await restorePsp()
  }
  for (const [i, refundId] of refundIds.entries()) {
    const settled = await refundSettles(ids[i]!, refundId, settleDeadlineMs)
    t.equal(settled.status, 'succeeded', `${refundId} succeeded`)
    t.equal((await pspRefunds(refundId)).length, 1, `${refundId}: one PSP refund`)
  }
  await assertOutcome(t, ids, refundIds.length)
})

t.test('a PSP failing half of all calls with 5xx: refunds are retried into one PSP refund each', async (t) => {
  const ids = await succeededPayments(6, 'rf5xx')
  const refundIds: string[] = []
  await setPsp({ error5xxRate: 0.5 })
  try {
    for (const id of ids) refundIds.push(await refund(id))
    for (const [i, refundId] of refundIds.entries()) {
      t.equal((await refundSettles(ids[i]!, refundId, settleDeadlineMs)).status, 'succeeded', `${refundId} succeeded`)
    }
  } finally {
    await restorePsp()
  }
  await assertOutcome(t, ids, refundIds.length)
})

t.test('a dropped refund webhook is resolved by the watchdog', async (t) => {
  // pm_card_refund_async: the PSP answers the refund `pending` and settles it later by webhook;
  // every webhook is dropped for the whole test, so only the watchdog (past its stale age, 30 s
  // on the test stack) can learn the outcome, by asking the PSP under the refund's key.
  const id = await createWith('pm_card_refund_async', 'rfdrop')
  t.equal((await nodeReaches(id, settleDeadlineMs)).status, 'succeeded')
  await setPsp({ webhookDropRate: 1 })
  let refundId: string
  try {
    refundId = await refund(id)
    t.equal((await refundSettles(id, refundId, settleDeadlineMs)).status, 'succeeded')
  } finally {
    await setPsp({ webhookDropRate: original.webhookDropRate })
  }
  // The outcome check waits until Postgres holds no pending refund of the payment.
  await assertOutcome(t, [id], 1)
  const { rows } = await db().query(`SELECT actor FROM payment_events WHERE checkout_id = $1 AND type = 'payment.refund_updated'`, [id])
  t.same(rows.map((r) => r.actor), ['processor:watchdog'], 'settled by the watchdog (a processor)')
})
