// The list query parser per listing: payments and refunds share it, each with its own statuses and
// cursor id; everything else (times, limit, unknown or repeated parameters) is checked the same way.

import t from 'tap'
import { parseListQuery, paymentListing, refundListing } from '../query.ts'

const parse = (listing: typeof paymentListing | typeof refundListing, query: string, rangeRequired = false) =>
  parseListQuery(listing, new URLSearchParams(query), { rangeRequired })
const fields = (result: ReturnType<typeof parse>): string[] => ('errors' in result ? result.errors.map((e) => `${e.field}:${e.code}`) : [])

t.test('refunds: their statuses and refund ids', (t) => {
  t.same(parse(refundListing, 'status=failed&limit=5&starting_after=re_Abc-1_z&created[gte]=2026-12-07'), {
    query: { createdGteMs: Date.parse('2026-12-07T00:00:00Z'), createdLtMs: undefined, status: 'failed', limit: 5, startingAfter: 're_Abc-1_z' },
  })
  t.same(fields(parse(refundListing, 'status=canceled')), ['status:enum'], 'a payment status is not a refund status')
  t.same(fields(parse(refundListing, 'starting_after=co_123')), ['starting_after:format'], 'a checkout id is not a refund cursor')
  t.match(parse(refundListing, 'starting_after=co_123'), { errors: [{ message: 'starting_after must be a refund id' }] })
  t.end()
})

t.test('payments: unchanged', (t) => {
  t.match(parse(paymentListing, 'status=canceled&starting_after=co_123'), { query: { status: 'canceled', startingAfter: 'co_123' } })
  t.same(fields(parse(paymentListing, 'status=pendingx')), ['status:enum'])
  t.end()
})

t.test('shared checks apply to both', (t) => {
  for (const listing of [paymentListing, refundListing]) {
    t.same(fields(parse(listing, 'limit=0&color=red&created[gte]=2026-12-07&created[lt]=2026-12-06')).sort(),
      ['color:unknown', 'created[lt]:range', 'limit:range'], listing.table)
    t.same(fields(parse(listing, '', true)), ['created:required'], `${listing.table}: an export needs a range`)
  }
  t.end()
})
