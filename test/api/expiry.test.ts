// Expiry of a payment nobody completes (issue #14, processor/expiry.ts), run as the processor's
// watchdog runs it, against the real node, PSP and Postgres of the shared stack: a payment left at
// requires_action is canceled at the PSP, then on its node; a customer who approved first wins.
// Called on this test's own payments (the watchdog's round would also expire other tests'
// payments with the expiry set to zero); the round's choice of what to expire is in
// processor/test/expiry.test.ts.

import pg from 'pg'
import t from 'tap'
import { request } from 'undici'
import { keyRingFromEnv } from '../../lib/field-crypto.ts'
import { createLogger } from '../../lib/log.ts'
import { AttemptLog } from '../../processor/attempt-log.ts'
import type { ChargeFlowDeps } from '../../processor/charge-flow.ts'
import { expireAwaitingCustomer, expiredFailureCode } from '../../processor/expiry.ts'
import { processorLimits as limits } from '../../processor/limits.ts'
import { NodeClient } from '../../processor/node-client.ts'
import { PspClient } from '../../processor/psp/psp-client.ts'
import { Semaphore } from '../../processor/semaphore.ts'
import { getPayment } from '../helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches, pspCharges } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const settleDeadlineMs = 60_000

const pool = new pg.Pool({ connectionString: stack.databaseUrls.processor, max: 2 })
const node = new NodeClient({
  internalUrl: stack.internalUrl, internalToken: stack.internalTokens.processor, connectTimeoutMs: 5_000, headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000, connectionsMax: 4, transitionsPerBatchMax: 16, transitionsQueuedPerNodeMax: 64,
})
const psp = new PspClient({ baseUrl: stack.psp.url, secretKey: stack.psp.secretKey, connectTimeoutMs: 5_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, connectionsMax: 4 })
const log = createLogger('expiry-test', {})
const attempts = new AttemptLog(pool, keyRingFromEnv({ RINGPAY_FIELD_KEYS_FILE: stack.fieldKeysFile }), {
  rowsMax: 64, flushIntervalMs: 10, backoffBaseDelayMs: limits.projectionBackoffBaseDelayMs, backoffDelayMsMax: limits.projectionBackoffDelayMsMax,
}, log)
const flagged: string[] = []
const flow: ChargeFlowDeps = { node, psp, attempts, pspSlots: new Semaphore(4), log, flag: async (id) => { flagged.push(id.checkout_id) } }
t.teardown(async () => {
  await attempts.flush()
  await Promise.all([node.close(), psp.close(), pool.end(), closeDb()])
})

async function awaitingCustomer (): Promise<{ id: string, url: string }> {
  const id = await createWith('pm_card_requires_action', 'exp')
  await nodeReaches(id, settleDeadlineMs, new Set(['requires_action']))
  const view = await getPayment(stack.publicUrl, key, id)
  return { id, url: view.body.next_action.redirect_to_url.url }
}

t.test('left at requires_action past its expiry: canceled at the PSP, then on its node', async (t) => {
  const { id, url } = await awaitingCustomer()
  const before = await node.get({ merchant_id: 'merchant_demo', checkout_id: id })
  t.equal(await expireAwaitingCustomer(flow, before), 'expired')
  const [charge] = await pspCharges(id)
  t.equal(charge.status, 'canceled', 'the customer can no longer pay')
  const after = await nodeReaches(id, settleDeadlineMs)
  t.equal(after.status, 'canceled')
  // The PSP's charge.canceled webhook can land first and cancel it; otherwise the expiry's reason is kept.
  if (after.failure_code !== undefined) t.equal(after.failure_code, expiredFailureCode)
  t.match(await postgresReaches(id, after.version, settleDeadlineMs), { status: 'canceled', flagged_reason: null })
  await attempts.flush()
  const { rows } = await db().query("SELECT outcome FROM psp_attempts WHERE checkout_id = $1 AND outcome LIKE 'cancel_%'", [id])
  t.ok(rows.some((r) => r.outcome === 'cancel_canceled'), 'the PSP cancel is recorded like every PSP call')
  const page = await request(url)
  t.match(await page.body.text(), /data-status="canceled"/, 'the customer\'s page says so')
  t.equal(await expireAwaitingCustomer(flow, await node.get({ merchant_id: 'merchant_demo', checkout_id: id })).catch((error: Error) => error.message), 'expired', 'again: a no-op')
  t.equal((await nodeReaches(id, settleDeadlineMs)).version, after.version, 'nothing more written')
})

t.test('the customer approved just before the expiry: the charge wins', async (t) => {
  const { id, url } = await awaitingCustomer()
  const seenBefore = await node.get({ merchant_id: 'merchant_demo', checkout_id: id })
  const approve = new URL(url)
  approve.pathname += '/approve'
  await (await request(approve, { method: 'POST' })).body.text()
  // The watchdog read the payment before the approval reached the node.
  t.equal(await expireAwaitingCustomer(flow, seenBefore), 'charge_applied')
  const after = await nodeReaches(id, settleDeadlineMs)
  t.equal(after.status, 'succeeded', 'paid, not canceled')
  t.equal((await pspCharges(id))[0].status, 'succeeded')
  t.notOk(flagged.includes(id), 'nothing to flag')
})
