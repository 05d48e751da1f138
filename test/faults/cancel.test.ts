// A cancel that lands before the processor claims the payment, made certain by stopping the
// processors (serial: fault tests may stop services): the payment is canceled on its node (new
// version, long-polls woken) and then in Postgres, and once the processors are back and have
// handled its `payment.created` event, their claim is refused and the PSP never sees a charge.

import t from 'tap'
import { call, cancelPayment, eventually, getInternal, getPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, postgresReaches, pspCharges } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000
t.teardown(closeDb)

async function paymentsInFlight (adminPort: number): Promise<number> {
  const res = await call(`http://127.0.0.1:${adminPort}/metrics`)
  const match = /^ringpay_processor_payments_in_flight(?:\{[^}]*\})? (\d+)/m.exec(res.text)
  if (match === null) throw new Error(`no payments_in_flight metric on processor port ${adminPort}`)
  return Number(match[1])
}

async function createdEventsConsumed (adminPort: number): Promise<number> {
  const res = await call(`http://127.0.0.1:${adminPort}/metrics`)
  const match = /^ringpay_processor_events_total\{[^}]*type="payment\.created"[^}]*\} (\d+)/m.exec(res.text)
  return match === null ? 0 : Number(match[1])
}

/** ringpay_long_poll_waiters summed over the nodes. */
async function longPollWaiters (): Promise<number> {
  let total = 0
  for (const node of stack.nodes) {
    const res = await call(`http://127.0.0.1:${node.adminPort}/metrics`)
    const match = /^ringpay_long_poll_waiters(?:\{[^}]*\})? (\d+)/m.exec(res.text)
    total += match === null ? 0 : Number(match[1])
  }
  return total
}

/** ringpay_cancel_requests_total{outcome} summed over the nodes. */
async function nodeCancels (outcome: string): Promise<number> {
  let total = 0
  for (const node of stack.nodes) {
    const res = await call(`http://127.0.0.1:${node.adminPort}/metrics`)
    for (const match of res.text.matchAll(/^ringpay_cancel_requests_total\{([^}]*)\} (\d+)/gm)) {
      if (match[1]!.includes(`outcome="${outcome}"`)) total += Number(match[2])
    }
  }
  return total
}

t.test('cancel before the claim: canceled everywhere, woken, never charged', async (t) => {
  const count = 5
  const stopped: string[] = []
  t.teardown(async () => {
    for (const id of stopped) await control(`/services/${id}/start`).catch(() => undefined)
  })
  for (const processor of stack.processors) {
    await control(`/services/${processor.id}/stop`)
    stopped.push(processor.id)
  }
  const canceledBefore = await nodeCancels('canceled')
  const replayedBefore = await nodeCancels('replayed')
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(await createWith('pm_card_visa', 'cxlf'))
  // Nothing can claim them now: each stays pending at version 1 until canceled.
  const waitersBefore = await longPollWaiters()
  const polls = ids.map((id) => getPayment(stack.publicUrl, key, id, '?wait_ms=20000&after_version=1'))
  // Parked on their nodes before the cancels, so an answer with the cancel is a wake-up.
  await eventually(async () => (await longPollWaiters()) >= waitersBefore + count ? true : undefined, 10_000, 'the long-polls to park')
  for (const id of ids) {
    const startedAt = Date.now()
    const res = await cancelPayment(stack.publicUrl, key, id)
    t.equal(res.status, 200, `${id} canceled`)
    t.match(res.body, { checkout_id: id, status: 'canceled', version: 2 })
    t.notOk(res.headers['idempotent-replayed'])
    const again = await cancelPayment(stack.publicUrl, key, id)
    t.equal(again.status, 200, 'a second cancel answers the payment again')
    t.match(again.body, { status: 'canceled', version: 2 })
    t.equal(again.headers['idempotent-replayed'], 'true')
    const stored = (await getInternal(stack.internalUrl, id)).body
    t.match(stored, { status: 'canceled', version: 2 })
    t.notOk(stored.psp_reference, 'no PSP reference: nothing was sent to the PSP')
    t.ok(Date.now() - startedAt < 10_000)
  }
  t.equal(await nodeCancels('canceled') - canceledBefore, count, 'the nodes counted the cancels')
  t.equal(await nodeCancels('replayed') - replayedBefore, count, 'and the repeated ones apart')
  for (const [i, poll] of polls.entries()) {
    const res = await poll
    t.match(res.body, { checkout_id: ids[i], status: 'canceled', version: 2 }, 'the long-poll was woken by the cancel')
  }

  for (const id of stopped.splice(0)) await control(`/services/${id}/start`)
  for (const id of ids) {
    const row = await postgresReaches(id, 2, settleDeadlineMs)
    t.equal(row.status, 'canceled', `${id} canceled in Postgres`)
  }
  // Each payment's created event precedes its cancel in its partition, so it has been consumed;
  // its drive (the refused claim, the re-read) is done once no payment is in flight.
  const consumed = (await Promise.all(stack.processors.map((p) => createdEventsConsumed(p.adminPort)))).reduce((a, b) => a + b, 0)
  t.ok(consumed >= count, `the processors consumed ${consumed} created events since their restart`)
  await eventually(async () => {
    const inFlight = await Promise.all(stack.processors.map((p) => paymentsInFlight(p.adminPort)))
    return inFlight.every((n) => n === 0) ? true : undefined
  }, settleDeadlineMs, 'the processors to finish driving')
  for (const id of ids) {
    t.same(await pspCharges(id), [], `${id} never charged`)
    const attempts = await db().query('SELECT count(*)::int AS n FROM psp_attempts WHERE checkout_id = $1', [id])
    t.equal(attempts.rows[0].n, 0, `${id}: no PSP call was made`)
    t.match((await getInternal(stack.internalUrl, id)).body, { status: 'canceled', version: 2 }, `${id} still canceled at version 2`)
    const events = await db().query('SELECT count(*)::int AS n FROM payment_events WHERE checkout_id = $1', [id])
    t.equal(events.rows[0].n, 2, `${id}: created and canceled, nothing else`)
  }
})
