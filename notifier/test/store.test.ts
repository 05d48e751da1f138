// The durable delivery queue's SQL (store.ts) against the stack's real Postgres, on temporary
// copies of the notifier's tables (they shadow the real ones in this one session, so the running
// notifier never sees these rows): events recorded once, deliveries only to the merchant's
// subscribed endpoints, only the earliest pending version per (endpoint, payment) due, the
// per-endpoint cap, leases, retries pushing later versions back, failure streaks, disabling,
// deleting, redelivering, secrets rolled, events paged.

import pg from 'pg'
import t from 'tap'
import { loadStackInfo } from '../../test/helpers/stack.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import type { MerchantEvent, MerchantEventType } from '../events.ts'
import {
  createEndpoint, deleteEndpoint, disableEndpoint, dueDeliveries, leaseDeliveries, listEvents, recordAttempt, recordEvents, redeliver,
  rollSecret, type ClaimedDelivery,
} from '../store.ts'

const stack = loadStackInfo()
const windowMs = 3_600_000
// One connection: the temporary tables live in its session.
const pool = new pg.Pool({ connectionString: stack.databaseUrl, max: 1, idleTimeoutMillis: 0 })
t.teardown(() => pool.end())
for (const table of ['webhook_endpoints', 'merchant_events', 'webhook_deliveries', 'webhook_attempts']) {
  await pool.query(`CREATE TEMP TABLE ${table} (LIKE public.${table} INCLUDING ALL)`)
}

let at = Date.parse('2026-12-07T10:00:00Z')
function event (merchantId: string, checkoutId: string, version: number, type: MerchantEventType): MerchantEvent {
  at += 1_000
  const id = `evt_${checkoutId}_${version}`
  return { id, merchantId, type, checkoutId, version, changeEventId: `n1:${at}`, createdAtMs: at, body: JSON.stringify({ id, type, checkout_id: checkoutId, version }) }
}

const all = await createEndpoint(pool, testKeyRing, { id: 'we_all', merchantId: 'm1', url: 'https://a.example/', events: ['*'], secret: 'whsec_all' }, 16)
const succeededOnly = await createEndpoint(pool, testKeyRing, { id: 'we_ok', merchantId: 'm1', url: 'https://b.example/', events: ['payment.succeeded'], secret: 'whsec_ok' }, 16)
await createEndpoint(pool, testKeyRing, { id: 'we_m2', merchantId: 'm2', url: 'https://c.example/', events: ['*'], secret: 'whsec_m2' }, 16)
const events = [
  event('m1', 'coA', 1, 'payment.created'), event('m1', 'coA', 3, 'payment.succeeded'), event('m1', 'coB', 1, 'payment.created'),
  event('m3', 'coC', 1, 'payment.created'),
]

const due = async (atCap: string[] = [], perEndpointMax = 10): Promise<string[]> => {
  const rows = await dueDeliveries(pool, atCap, perEndpointMax, 100)
  const { rows: named } = await pool.query<{ id: string, endpoint_id: string, event_id: string }>(
    'SELECT id, endpoint_id, event_id FROM webhook_deliveries WHERE id = ANY ($1::bigint[])', [rows.map((r) => r.deliveryId)])
  return named.map((r) => `${r.endpoint_id}:${r.event_id}`).sort()
}
const lease = async (endpointId: string, eventId: string): Promise<ClaimedDelivery> => {
  const { rows: [row] } = await pool.query<{ id: string }>('SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2', [endpointId, eventId])
  const { claimed: [claimed] } = await leaseDeliveries(pool, testKeyRing, [row!.id], 30_000)
  return claimed!
}
const attempt = { attemptedAtMs: Date.now(), latencyMs: 12, httpStatus: 500, error: 'HTTP 500' }

t.test('events recorded once, deliveries to the merchant\'s subscribed endpoints only', async (t) => {
  t.equal(await recordEvents(pool, testKeyRing, events, windowMs), 4, 'coA v1 → we_all; coA v3 → we_all, we_ok; coB v1 → we_all')
  t.equal(await recordEvents(pool, testKeyRing, events, windowMs), 0, 'a redelivered batch makes nothing new')
  const { rows } = await pool.query('SELECT id FROM merchant_events ORDER BY id')
  t.same(rows.map((r) => r.id), ['evt_coA_1', 'evt_coA_3', 'evt_coB_1'], 'm3 has no endpoint: its event is not kept')
})

t.test('only the earliest pending version per endpoint and payment is due; the per-endpoint cap', async (t) => {
  t.same(await due(), ['we_all:evt_coA_1', 'we_all:evt_coB_1', 'we_ok:evt_coA_3'], 'coA v3 waits for v1 on we_all, not on we_ok')
  t.equal((await due([], 1)).filter((d) => d.startsWith('we_all')).length, 1, 'at most perEndpointMax per endpoint')
  t.same(await due(['we_all']), ['we_ok:evt_coA_3'], 'an endpoint at its cap here is skipped')
})

t.test('a lease hides a delivery; a retry pushes the payment\'s later versions back; success frees them', async (t) => {
  const first = await lease('we_all', 'evt_coA_1')
  t.same(first.secrets, ['whsec_all'], 'the secret opens')
  t.equal(first.body, events[0]!.body, 'the body opens')
  t.notOk((await due()).includes('we_all:evt_coA_1'), 'leased: not due')
  t.notOk(await leaseDeliveries(pool, testKeyRing, [first.deliveryId], 30_000).then((r) => r.claimed.length), 'and not leased twice')
  const streak = await recordAttempt(pool, first, attempt, { kind: 'retry', delayMs: 60_000 })
  t.match(streak, { consecutiveFailures: 1, status: 'enabled' })
  t.ok(streak.failingSinceMs)
  const { rows: [later] } = await pool.query<{ late: boolean }>(`SELECT next_attempt_at >= (SELECT next_attempt_at FROM webhook_deliveries
    WHERE endpoint_id = 'we_all' AND event_id = 'evt_coA_1') AS late FROM webhook_deliveries WHERE endpoint_id = 'we_all' AND event_id = 'evt_coA_3'`)
  t.ok(later!.late, 'v3 is not due before v1 retries')
  t.notOk((await due()).some((d) => d.startsWith('we_all:evt_coA')), 'neither v1 (waiting for its retry) nor v3 is due on we_all')
  // Its retry comes due; it succeeds; v3 becomes due at once.
  await pool.query("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = 'we_all' AND event_id = 'evt_coA_1'")
  const retried = await lease('we_all', 'evt_coA_1')
  t.equal(retried.attempts, 1)
  t.match(await recordAttempt(pool, retried, { ...attempt, httpStatus: 200, error: undefined }, { kind: 'succeeded' }), { consecutiveFailures: 0, failingSinceMs: undefined })
  await pool.query("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = 'we_all' AND event_id = 'evt_coA_3'")
  t.ok((await due()).includes('we_all:evt_coA_3'), 'v3 is due once v1 succeeded')
  const { rows: attempts } = await pool.query("SELECT http_status FROM webhook_attempts WHERE event_id = 'evt_coA_1' ORDER BY id")
  t.same(attempts.map((a) => a.http_status), [500, 200], 'every attempt recorded')
})

t.test('failed for good frees the next version too', async (t) => {
  const b = await lease('we_all', 'evt_coB_1')
  await recordAttempt(pool, b, attempt, { kind: 'failed' })
  t.equal((await recordEvents(pool, testKeyRing, [event('m1', 'coB', 2, 'payment.failed')], windowMs)), 1)
  t.ok((await due()).includes('we_all:evt_coB_2'), 'coB v2 is due: v1 failed for good')
})

t.test('disabled and deleted endpoints get nothing', async (t) => {
  t.ok(await disableEndpoint(pool, 'we_ok', 'failing'))
  t.notOk(await disableEndpoint(pool, 'we_ok', 'again'), 'disabled once, the first reason kept')
  t.notOk((await due()).some((d) => d.startsWith('we_ok')))
  t.same(await leaseDeliveries(pool, testKeyRing, (await pool.query("SELECT id FROM webhook_deliveries WHERE endpoint_id = 'we_ok'")).rows.map((r) => r.id), 30_000),
    { claimed: [], unopenable: [] }, 'nor is a delivery of it leased')
  const { rows: okDeliveries } = await pool.query("SELECT status, last_error FROM webhook_deliveries WHERE endpoint_id = 'we_ok'")
  t.ok(okDeliveries.length > 0 && okDeliveries.every((d) => d.status === 'failed' && d.last_error === 'endpoint disabled'), 'its pending deliveries failed, with why')
  t.ok(await deleteEndpoint(pool, 'm1', 'we_all'))
  const { rows: allPending } = await pool.query("SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = 'we_all' AND status = 'pending'")
  t.equal(allPending[0].n, 0, 'a deleted endpoint keeps no pending delivery')
  t.notOk(await deleteEndpoint(pool, 'm2', 'we_ok'), 'another merchant\'s endpoint is not deleted')
  t.same(await due(), [])
  t.equal(await recordEvents(pool, testKeyRing, [event('m1', 'coD', 1, 'payment.succeeded')], windowMs), 0, 'no enabled endpoint: no delivery')
})

t.test('a delivery whose secret does not open (another key ring) is returned apart; its failure does not count against the endpoint', async (t) => {
  const { KeyRing, newFieldKey } = await import('../../lib/field-crypto.ts')
  const other = new KeyRing({ active: 'other', keys: [newFieldKey('other')] })
  await createEndpoint(pool, other, { id: 'we_foreign', merchantId: 'm4', url: 'https://e.example/', events: ['*'], secret: 'whsec_x' }, 16)
  await createEndpoint(pool, testKeyRing, { id: 'we_m4', merchantId: 'm4', url: 'https://f.example/', events: ['*'], secret: 'whsec_y' }, 16)
  t.equal(await recordEvents(pool, testKeyRing, [event('m4', 'coE', 1, 'payment.created')], windowMs), 2)
  const { rows } = await pool.query("SELECT id FROM webhook_deliveries WHERE event_id = 'evt_coE_1' ORDER BY endpoint_id")
  const { claimed, unopenable } = await leaseDeliveries(pool, testKeyRing, rows.map((r) => r.id), 30_000)
  t.same(claimed.map((c) => c.endpointId), ['we_m4'], 'the other delivery is not held back')
  t.equal(unopenable.length, 1)
  t.match(unopenable[0], { delivery: { endpointId: 'we_foreign' }, error: { code: 'field_key_unknown' } })
  const streak = await recordAttempt(pool, unopenable[0]!.delivery, { attemptedAtMs: Date.now(), latencyMs: 0, httpStatus: undefined, error: 'x' }, { kind: 'retry', delayMs: 1_000 }, false)
  t.match(streak, { consecutiveFailures: 0, status: 'enabled' })
  const { rows: [endpoint] } = await pool.query("SELECT consecutive_failures FROM webhook_endpoints WHERE id = 'we_foreign'")
  t.equal(endpoint.consecutive_failures, 0, 'not counted against the endpoint')
  await deleteEndpoint(pool, 'm4', 'we_foreign')
  await deleteEndpoint(pool, 'm4', 'we_m4')
})

t.test('redeliver, roll, list', async (t) => {
  await createEndpoint(pool, testKeyRing, { id: 'we_new', merchantId: 'm1', url: 'https://d.example/', events: ['*'], secret: 'whsec_new' }, 16)
  t.same(await redeliver(pool, 'm1', 'evt_coA_3', 'we_new', windowMs), ['we_new'], 'to an endpoint made after the event')
  t.ok((await due()).includes('we_new:evt_coA_3'))
  await t.rejects(redeliver(pool, 'm2', 'evt_coA_3', undefined, windowMs), { name: 'EventNotFound' }, 'another merchant\'s event')
  await t.rejects(redeliver(pool, 'm1', 'evt_coA_3', 'we_ok', windowMs), { name: 'EndpointDisabled' })
  await t.rejects(redeliver(pool, 'm1', 'evt_coA_3', 'we_m2', windowMs), { name: 'EndpointNotFound' })
  const rolled = await rollSecret(pool, testKeyRing, 'm1', 'we_new', 'whsec_newer', 3600)
  t.ok(rolled?.previous_secret_expires_at)
  t.same((await lease('we_new', 'evt_coA_3')).secrets, ['whsec_newer', 'whsec_new'], 'both sign during the grace period')
  t.equal(await rollSecret(pool, testKeyRing, 'm2', 'we_new', 'x', 0), undefined, 'not another merchant\'s')
  const page1 = await listEvents(pool, testKeyRing, 'm1', { limit: 2, startingAfter: undefined, type: undefined, checkoutId: undefined })
  t.equal(page1.hasMore, true)
  const page2 = await listEvents(pool, testKeyRing, 'm1', { limit: 2, startingAfter: String(page1.items[1]!.id), type: undefined, checkoutId: undefined })
  const ids = [...page1.items, ...page2.items].map((e) => e.id)
  t.same(ids, ['evt_coD_1', 'evt_coB_2', 'evt_coB_1', 'evt_coA_3'], 'newest first, no repeats')
  t.same((await listEvents(pool, testKeyRing, 'm1', { limit: 10, startingAfter: undefined, type: 'payment.created', checkoutId: 'coA' })).items.map((e) => e.id), ['evt_coA_1'])
  await t.rejects(listEvents(pool, testKeyRing, 'm2', { limit: 2, startingAfter: 'evt_coA_1', type: undefined, checkoutId: undefined }), { name: 'UnknownEventCursor' })
})
