// GET /refunds and GET /reports/refunds.csv through the public nginx (the reporting service): a
// merchant lists and exports only its own refunds, newest first; pages walked with starting_after
// neither repeat nor skip, also while new refunds arrive between pages; a read-only key may list;
// /payments/{id}/refunds still goes to the payment's node. Other tests create refunds meanwhile,
// so every check is about this file's refunds inside their time window.

import t from 'tap'
import { call, createPayment, eventually, merchantOfKey, newCheckoutId, refundPayment } from '../helpers/api.ts'
import { closeDb, db, nodeReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const demoKey = stack.apiKeys.merchant_demo
const readKey = stack.apiKeys.merchant_demo_read
const otherKey = stack.apiKeys.merchant_other
const settleDeadlineMs = 60_000
t.teardown(closeDb)

function list (key: string | undefined, query: string): ReturnType<typeof call> {
  return call(`${stack.publicUrl}/refunds${query}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })
}

/** A succeeded payment of `key`'s merchant, with one refund per amount (requested one after the other); the refund ids. */
async function refunded (key: string, paymentMethod: string, amounts: number[]): Promise<string[]> {
  const id = newCheckoutId('reprf')
  const res = await createPayment(stack.publicUrl, key, id, { amount: 1000, currency: 'EUR', payment_method: paymentMethod })
  if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  if ((await nodeReaches(id, settleDeadlineMs, undefined, merchantOfKey(key))).status !== 'succeeded') throw new Error(`${id} did not succeed`)
  const ids: string[] = []
  for (const [i, amount] of amounts.entries()) {
    const made = await eventually(async () => {
      const r = await refundPayment(stack.publicUrl, key, id, `${id}-${i}`, { amount, reason: i === 0 ? '=1+1' : 'returned' })
      return r.status === 409 && r.body?.code === 'idempotency_key_in_use' ? undefined : r
    }, settleDeadlineMs, `refund ${i} of ${id} accepted`)
    if (made.status !== 202) throw new Error(`refund of ${id}: ${made.status} ${made.text}`)
    ids.push(made.body.id)
  }
  return ids
}

/** Once Postgres has every refund in a final status. */
async function projected (refundIds: string[]): Promise<Array<{ refund_id: string, status: string, created_at: Date }>> {
  return eventually(async () => {
    const { rows } = await db().query("SELECT refund_id, status, created_at FROM refunds WHERE refund_id = ANY($1) AND status <> 'pending'", [refundIds])
    return rows.length === refundIds.length ? rows : undefined
  }, settleDeadlineMs, `${refundIds.length} refunds projected`)
}

const demoIds = (await Promise.all([
  refunded(demoKey, 'pm_card_visa', [100, 200]),
  refunded(demoKey, 'pm_card_visa', [300]),
  refunded(demoKey, 'pm_card_refund_fails', [400]),
])).flat()
const failedId = demoIds[3]!
const otherIds = await refunded(otherKey, 'pm_card_visa', [150, 250])
const rows = await projected([...demoIds, ...otherIds])
const times = rows.map((r) => r.created_at.getTime())
const window = `created%5Bgte%5D=${new Date(Math.min(...times)).toISOString()}&created%5Blt%5D=${new Date(Math.max(...times) + 1).toISOString()}`
const ofMine = (ids: string[]): string[] => ids.filter((id) => demoIds.includes(id))

/** Every page of `query` (limit 2), walked with starting_after; `between` runs after the first page. */
async function walk (t: any, key: string, query: string, between: () => Promise<void> = async () => {}): Promise<any[]> {
  const seen: any[] = []
  let after = ''
  for (let page = 0; page < 200; page++) {
    const res = await list(key, `?limit=2&${query}${after}`)
    t.equal(res.status, 200)
    t.match(res.body, { object: 'list', url: '/refunds', has_more: Boolean })
    t.ok(res.body.data.length <= 2, 'a page holds at most limit')
    seen.push(...res.body.data)
    if (page === 0) await between()
    if (!res.body.has_more) break
    after = `&starting_after=${res.body.data.at(-1).id}`
  }
  return seen
}

t.test('pages of 2, walked with starting_after: newest first, no repeats, every one of mine, nobody else\'s', async (t) => {
  const seen = await walk(t, demoKey, window)
  const ids = seen.map((r) => r.id)
  t.equal(new Set(ids).size, ids.length, 'no refund on two pages')
  for (const id of demoIds) t.ok(ids.includes(id), `${id} is listed`)
  for (const id of otherIds) t.notOk(ids.includes(id), `merchant_other's ${id} is not`)
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1], seen[i]]
    t.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), `${a.id} before ${b.id}: newest first`)
  }
  const node = (await call(`${stack.publicUrl}/payments/${seen.find((r) => r.id === demoIds[0]).checkout_id}/refunds/${demoIds[0]}`,
    { headers: { authorization: `Bearer ${demoKey}` } })).body
  t.same(seen.find((r) => r.id === demoIds[0]), { ...node, currency_exponent: 2 }, 'the list item is the node\'s refund (plus the exponent)')
  t.match(seen.find((r) => r.id === failedId), { status: 'failed', amount: 400, failure_code: String })
})

t.test('refunds made between two pages never shift the pages after the first', async (t) => {
  // The window stays open at the top: refunds made after the first page are newer than all of it.
  const from = `created%5Bgte%5D=${new Date(Math.min(...times)).toISOString()}`
  let late: string[] = []
  const seen = await walk(t, demoKey, from, async () => {
    late = await refunded(demoKey, 'pm_card_visa', [50, 60, 70])
    await projected(late)
  })
  const ids = seen.map((r) => r.id)
  t.equal(new Set(ids).size, ids.length, 'no refund on two pages')
  for (const id of demoIds) t.ok(ids.includes(id), `${id} is still listed once`)
  for (const id of late) t.notOk(ids.includes(id), `${id}, newer than the first page, is not on the pages after it`)
  const fresh = (await list(demoKey, `?limit=100&${from}`)).body.data.map((r: any) => r.id)
  for (const id of late) t.ok(fresh.includes(id), `${id} is on a walk started after it`)
})

t.test('merchant isolation: the other merchant never sees mine, and a cursor naming mine is refused like none', async (t) => {
  const seen = await walk(t, otherKey, window)
  const ids = seen.map((r) => r.id)
  for (const id of otherIds) t.ok(ids.includes(id), `${id} is listed`)
  for (const id of demoIds) t.notOk(ids.includes(id), `merchant_demo's ${id} is not`)
  const foreign = await list(otherKey, `?starting_after=${demoIds[0]}`)
  const missing = await list(otherKey, '?starting_after=re_doesNotExist0000000000')
  t.equal(foreign.status, 400)
  t.same(foreign.body, missing.body, 'nothing tells another merchant\'s refund from none')
  const csv = await call(`${stack.publicUrl}/reports/refunds.csv?${window}`, { headers: { authorization: `Bearer ${otherKey}` } })
  for (const id of demoIds) t.notOk(csv.text.includes(id), `merchant_demo's ${id} is not in merchant_other's export`)
})

t.test('status filter; a read-only key lists', async (t) => {
  const failed = await list(readKey, `?status=failed&limit=100&${window}`)
  t.equal(failed.status, 200, 'a read-scoped key may list refunds')
  const ids = failed.body.data.map((r: any) => r.id)
  t.same(ofMine(ids), [failedId])
  t.ok(failed.body.data.every((r: any) => r.status === 'failed'))
})

t.test('CSV export: the same refunds in the list\'s order, formulas defused', async (t) => {
  const res = await call(`${stack.publicUrl}/reports/refunds.csv?${window}`, { headers: { authorization: `Bearer ${readKey}` } })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/csv/)
  t.match(res.headers['content-disposition'], /^attachment; filename="refunds-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv"$/)
  const lines = res.text.trimEnd().split('\n')
  t.equal(lines[0], 'refund_id,checkout_id,created_at,updated_at,status,amount,currency,reason,psp_reference,failure_code,failure_message')
  const exported = lines.slice(1).map((line) => line.slice(0, line.indexOf(',')))
  const listed = (await list(demoKey, `?limit=100&${window}`)).body.data.map((r: any) => r.id)
  t.same(ofMine(exported), ofMine(listed), 'this file\'s refunds, in the list\'s order')
  t.equal(ofMine(exported).length, demoIds.length)
  t.match(lines.find((line) => line.startsWith(`${demoIds[0]},`)), /,succeeded,100,EUR,'=1\+1,re_[A-Za-z0-9]+,,$/)
})

t.test('bad requests get a clear 4xx; a refund of one payment is still its node\'s', async (t) => {
  const cases: Array<[string, string | undefined, number, string, string?]> = [
    ['?status=canceled', demoKey, 400, 'invalid_query', 'status'],
    ['?starting_after=co_123', demoKey, 400, 'invalid_query', 'starting_after'],
    ['?limit=101', demoKey, 400, 'invalid_query', 'limit'],
    ['', undefined, 401, 'unauthorized'],
  ]
  for (const [query, key, status, code, field] of cases) {
    const res = await list(key, query)
    t.equal(res.status, status, `GET /refunds${query}`)
    t.equal(res.body.code, code)
    if (field !== undefined) t.ok(res.body.errors.some((e: any) => e.field === field), `names ${field}`)
  }
  const post = await call(`${stack.publicUrl}/refunds`, { method: 'POST', headers: { authorization: `Bearer ${demoKey}` } })
  t.match(post, { status: 400, body: { code: 'checkout_id_missing' } }, 'only GET /refunds goes to the reporting service: a POST is a node\'s, and names no payment')
  const one = await list(demoKey, `?limit=1&${window}`)
  const node = await call(`${stack.publicUrl}/payments/${one.body.data[0].checkout_id}/refunds/${one.body.data[0].id}`, { headers: { authorization: `Bearer ${demoKey}` } })
  t.equal(node.status, 200, '/payments/{id}/refunds/{refund_id} is answered by the node')
  t.notOk('currency_exponent' in node.body, 'the node\'s view, not the reporting service\'s')
})
