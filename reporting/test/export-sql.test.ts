// The export's COPY against a real Postgres, on a temporary `payments` or `refunds` (it shadows the
// real table in this session only): literals escaped, the merchant and range filters applied,
// newest first, and a PSP's or merchant's text that starts like a spreadsheet formula defused.

import { to as copyTo } from 'pg-copy-streams'
import pg from 'pg'
import t from 'tap'
import { text } from 'node:stream/consumers'
import { loadStackInfo } from '../../test/helpers/stack.ts'
import { csvHeader, exportCopySql, paymentListing, refundListing, type ListQuery } from '../query.ts'

const stack = loadStackInfo()

t.test('the COPY export: filters, order, quoting and formula defusing', async (t) => {
  const client = new pg.Client({ connectionString: stack.databaseUrl })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('CREATE TEMP TABLE payments (LIKE public.payments INCLUDING DEFAULTS)')
  const insert = `INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method,
    psp_reference, failure_code, failure_message, created_at, updated_at) VALUES ($1, $2, 'n1', $3, 'EUR', $4, 3, 'pm_x', $5, $6, $7, $8, $8)`
  const at = (s: string): Date => new Date(`2026-12-07T10:00:${s}Z`)
  await client.query(insert, ['co-old', "merchant_o'brien", 100, 'succeeded', 'ch_1', null, null, at('01.000')])
  await client.query(insert, ['co-new', "merchant_o'brien", 200, 'failed', null, 'card_declined', '=HYPERLINK("http://x","click"), then "quotes"', at('02.000')])
  await client.query(insert, ['co-outside', "merchant_o'brien", 300, 'succeeded', 'ch_3', null, null, at('59.000')])
  await client.query(insert, ['co-someone-else', 'merchant_other', 400, 'succeeded', '+ch_4', null, null, at('01.500')])
  const q: ListQuery = { createdGteMs: at('00.000').getTime(), createdLtMs: at('30.000').getTime(), status: undefined, limit: 20, startingAfter: undefined }
  const csv = await text(client.query(copyTo(exportCopySql(paymentListing, "merchant_o'brien", q, (v) => client.escapeLiteral(v)))))
  t.equal(csv,
    'co-new,2026-12-07T10:00:02.000Z,2026-12-07T10:00:02.000Z,failed,200,0,EUR,3,,card_declined,"\'=HYPERLINK(""http://x"",""click""), then ""quotes""",\n' +
    'co-old,2026-12-07T10:00:01.000Z,2026-12-07T10:00:01.000Z,succeeded,100,0,EUR,3,ch_1,,,\n',
    'newest first, only that merchant and range, the formula defused and quoted')
  t.equal(csvHeader(paymentListing).split(',').length, csv.split('\n')[0]!.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/).length, 'as many columns as the header')
  const onlyFailed = await text(client.query(copyTo(exportCopySql(paymentListing, "merchant_o'brien", { ...q, status: 'failed' }, (v) => client.escapeLiteral(v)))))
  t.match(onlyFailed, /^co-new,/)
  t.equal(onlyFailed.trimEnd().split('\n').length, 1)
})

t.test('the refunds export: the same filters and order, by (created_at, refund_id), and a reason defused', async (t) => {
  const client = new pg.Client({ connectionString: stack.databaseUrl })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('CREATE TEMP TABLE refunds (LIKE public.refunds INCLUDING DEFAULTS)')
  const insert = `INSERT INTO refunds (refund_id, checkout_id, merchant_id, amount, currency, status, reason, psp_reference, failure_code,
    failure_message, payment_version, created_at, updated_at) VALUES ($1, $2, $3, $4, 'EUR', $5, $6, $7, $8, $9, 4, $10, $10)`
  const at = (s: string): Date => new Date(`2026-12-07T10:00:${s}Z`)
  await client.query(insert, ['re_a', 'co-1', "merchant_o'brien", 100, 'succeeded', 'returned', 're_psp_1', null, null, at('01.000')])
  await client.query(insert, ['re_b', 'co-1', "merchant_o'brien", 50, 'failed', '@SUM(A1)', null, 'expired_or_canceled_card', 'The card was canceled', at('01.000')])
  await client.query(insert, ['re_c', 'co-2', "merchant_o'brien", 70, 'pending', '', null, null, null, at('45.000')])
  await client.query(insert, ['re_d', 'co-3', 'merchant_other', 80, 'succeeded', '', 're_psp_4', null, null, at('02.000')])
  const q: ListQuery = { createdGteMs: at('00.000').getTime(), createdLtMs: at('30.000').getTime(), status: undefined, limit: 20, startingAfter: undefined }
  const csv = await text(client.query(copyTo(exportCopySql(refundListing, "merchant_o'brien", q, (v) => client.escapeLiteral(v)))))
  t.equal(csv,
    're_b,co-1,2026-12-07T10:00:01.000Z,2026-12-07T10:00:01.000Z,failed,50,EUR,\'@SUM(A1),,expired_or_canceled_card,The card was canceled\n' +
    're_a,co-1,2026-12-07T10:00:01.000Z,2026-12-07T10:00:01.000Z,succeeded,100,EUR,returned,re_psp_1,,\n',
    'newest first (ties by refund id, descending), only that merchant and range, the formula defused')
  t.equal(csvHeader(refundListing), 'refund_id,checkout_id,created_at,updated_at,status,amount,currency,reason,psp_reference,failure_code,failure_message\n')
  const onlySucceeded = await text(client.query(copyTo(exportCopySql(refundListing, "merchant_o'brien", { ...q, status: 'succeeded' }, (v) => client.escapeLiteral(v)))))
  t.equal(onlySucceeded, 're_a,co-1,2026-12-07T10:00:01.000Z,2026-12-07T10:00:01.000Z,succeeded,100,EUR,returned,re_psp_1,,\n')
})
