// The reporting API through the public nginx (reporting/): a merchant lists and exports only its
// own payments, newest first; pages walked with starting_after neither repeat nor skip; filters
// by time and status; clear 4xx for every bad request. Other tests create payments meanwhile, so
// every check is about this file's payments inside their time window.

import t from 'tap'
import { call, createPayment, merchantOfKey, newCheckoutId } from '../helpers/api.ts'
import { closeDb, db, nodeReaches, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const demoKey = stack.apiKeys.merchant_demo
const otherKey = stack.apiKeys.merchant_other
const settleDeadlineMs = 60_000
t.teardown(closeDb)

function list (key: string | undefined, query: string): ReturnType<typeof call> {
  return call(`${stack.publicUrl}/payments${query}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } })
}

async function settled (key: string, paymentMethod: string, prefix: string): Promise<string> {
  const id = newCheckoutId(prefix)
  const res = await createPayment(stack.publicUrl, key, id, { amount: 1250, currency: 'EUR', payment_method: paymentMethod })
  if (res.status !== 202) throw new Error(`create ${id}: ${res.status} ${res.text}`)
  const node = await nodeReaches(id, settleDeadlineMs, undefined, merchantOfKey(key))
  await postgresReaches(id, node.version, settleDeadlineMs, merchantOfKey(key))
  return id
}

// This file's payments, settled and projected; the window spans exactly their created_at.
const demoIds = await Promise.all([0, 1, 2, 3, 4].map(() => settled(demoKey, 'pm_card_visa', 'rep')))
const declinedId = await settled(demoKey, 'pm_card_declined', 'rep')
const otherIds = await Promise.all([0, 1].map(() => settled(otherKey, 'pm_card_visa', 'rep')))
const mine = [...demoIds, declinedId]
const { rows: created } = await db().query<{ created_at: Date }>('SELECT created_at FROM payments WHERE checkout_id = ANY($1)', [[...mine, ...otherIds]])
const times = created.map((r) => r.created_at.getTime())
const window = `created%5Bgte%5D=${new Date(Math.min(...times)).toISOString()}&created%5Blt%5D=${new Date(Math.max(...times) + 1).toISOString()}`

t.test('pages of 2, walked with starting_after: newest first, no repeats, every one of mine, nobody else\'s', async (t) => {
  const seen: any[] = []
  let after = ''
  for (let page = 0; page < 200; page++) {
    const res = await list(demoKey, `?limit=2&${window}${after}`)
    t.equal(res.status, 200)
    t.equal(res.body.object, 'list')
    t.ok(res.body.data.length <= 2, 'a page holds at most limit')
    seen.push(...res.body.data)
    if (!res.body.has_more) break
    after = `&starting_after=${res.body.data.at(-1).checkout_id}`
  }
  const ids = seen.map((p) => p.checkout_id)
  t.equal(new Set(ids).size, ids.length, 'no payment on two pages')
  for (const id of mine) t.ok(ids.includes(id), `${id} is listed`)
  for (const id of otherIds) t.notOk(ids.includes(id), `merchant_other's ${id} is not`)
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1], seen[i]]
    t.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.checkout_id > b.checkout_id), `${a.checkout_id} before ${b.checkout_id}: newest first`)
  }
  const one = seen.find((p) => p.checkout_id === demoIds[0])
  t.match(one, { status: 'succeeded', amount: 1250, amount_refunded: 0, currency: 'EUR', currency_exponent: 2, version: 3, psp_reference: /^ch_/ }, 'the list item says what the payment says')
  t.notOk('merchant_id' in one || 'payment_method' in one, 'no merchant id, no payment method in the list')
})

t.test('the other merchant sees only its own', async (t) => {
  const res = await list(otherKey, `?limit=100&${window}`)
  t.equal(res.status, 200)
  const ids = res.body.data.map((p: any) => p.checkout_id)
  for (const id of otherIds) t.ok(ids.includes(id), `${id} is listed`)
  for (const id of mine) t.notOk(ids.includes(id), `merchant_demo's ${id} is not`)
  // A cursor naming another merchant's payment is refused like one that does not exist.
  const foreign = await list(otherKey, `?starting_after=${demoIds[0]}`)
  const missing = await list(otherKey, `?starting_after=${newCheckoutId('none')}`)
  t.equal(foreign.status, 400)
  t.same(foreign.body, missing.body, 'nothing tells another merchant\'s id from none')
})

t.test('status filter', async (t) => {
  const failed = await list(demoKey, `?status=failed&limit=100&${window}`)
  t.equal(failed.status, 200)
  const ids = failed.body.data.map((p: any) => p.checkout_id)
  t.ok(ids.includes(declinedId), 'the declined payment is listed')
  t.notOk(ids.some((id: string) => demoIds.includes(id)), 'no succeeded payment is')
  t.ok(failed.body.data.every((p: any) => p.status === 'failed' && typeof p.failure_code === 'string'))
})

t.test('CSV export: the same payments in the same order, as one file', async (t) => {
  const res = await call(`${stack.publicUrl}/reports/payments.csv?${window}`, { headers: { authorization: `Bearer ${demoKey}` } })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/csv/)
  t.match(res.headers['content-disposition'], /^attachment; filename="payments-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv"$/)
  const lines = res.text.trimEnd().split('\n')
  t.equal(lines[0], 'checkout_id,created_at,updated_at,status,amount,amount_refunded,currency,version,psp_reference,failure_code,failure_message,flagged_reason')
  const exported = lines.slice(1).map((line) => line.slice(0, line.indexOf(',')))
  const listed = (await list(demoKey, `?limit=100&${window}`)).body.data.map((p: any) => p.checkout_id)
  const ofMine = (ids: string[]): string[] => ids.filter((id) => mine.includes(id))
  t.same(ofMine(exported), ofMine(listed), 'this file\'s payments, in the list\'s order')
  t.equal(ofMine(exported).length, mine.length)
  t.notOk(exported.some((id) => otherIds.includes(id)), 'nothing of merchant_other')
  const row = lines.find((line) => line.startsWith(`${demoIds[0]},`))!
  t.match(row, /,succeeded,1250,0,EUR,3,ch_[A-Za-z0-9]+,,,$/)
})

t.test('bad requests get a clear 4xx and change nothing', async (t) => {
  const cases: Array<[string, string | undefined, number, string, string?]> = [
    ['?color=red', demoKey, 400, 'invalid_query', 'color'],
    ['?limit=0', demoKey, 400, 'invalid_query', 'limit'],
    ['?limit=101', demoKey, 400, 'invalid_query', 'limit'],
    ['?limit=2&limit=3', demoKey, 400, 'invalid_query', 'limit'],
    ['?created%5Bgte%5D=yesterday', demoKey, 400, 'invalid_query', 'created[gte]'],
    ['?created%5Bgte%5D=2026-12-07T10:00:00', demoKey, 400, 'invalid_query', 'created[gte]'],
    ['?created%5Bgte%5D=2026-12-07&created%5Blt%5D=2026-12-06', demoKey, 400, 'invalid_query', 'created[lt]'],
    ['?starting_after=bad%20id', demoKey, 400, 'invalid_query', 'starting_after'],
    ['', undefined, 401, 'unauthorized'],
    ['', 'sk_test_not_a_key', 401, 'unauthorized'],
  ]
  for (const [query, key, status, code, field] of cases) {
    const res = await list(key, query)
    t.equal(res.status, status, `GET /payments${query}`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(res.body.code, code)
    if (field !== undefined) t.ok(res.body.errors.some((e: any) => e.field === field), `names ${field}`)
  }
  const auth = { authorization: `Bearer ${demoKey}` }
  const noRange = await call(`${stack.publicUrl}/reports/payments.csv`, { headers: auth })
  t.equal(noRange.status, 400)
  t.ok(noRange.body.errors.some((e: any) => e.field === 'created' && e.code === 'required'))
  const tooLong = await call(`${stack.publicUrl}/reports/payments.csv?created%5Bgte%5D=2026-01-01&created%5Blt%5D=2026-03-01`, { headers: auth })
  t.equal(tooLong.status, 400)
  t.ok(tooLong.body.errors.some((e: any) => e.field === 'created' && e.code === 'range'))
  const post = await call(`${stack.publicUrl}/reports/payments.csv`, { method: 'POST', headers: auth })
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET')
  const unknown = await call(`${stack.publicUrl}/reports/disputes.csv`, { headers: auth })
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'not_found')
})
