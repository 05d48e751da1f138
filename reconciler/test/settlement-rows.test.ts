import t from 'tap'
import { checkHeader, stagingLine } from '../settlement-rows.ts'

const date = '2031-03-01'
const row = (over: Partial<Record<number, string>> = {}): string[] => {
  const cells = [date, 'ch_1', 'co-1', 'm1', '1999', 'EUR', '53', '1946', 'succeeded', '2031-03-01T10:11:12Z', 'charge', '', '']
  for (const [i, v] of Object.entries(over)) cells[Number(i)] = v!
  return cells
}

t.test('header', (t) => {
  checkHeader('settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference'.split(','), 1)
  t.throws(() => checkHeader('settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at'.split(','), 1),
    { code: 'report_malformed', line: 1 }, 'the format without line types is refused, not read as charges')
  t.throws(() => checkHeader(row(), 1), { code: 'report_malformed', line: 1, message: /expected the header/ })
  t.throws(() => checkHeader('settlement_date,psp_reference'.split(','), 1), { code: 'report_malformed', line: 1 })
  t.end()
})

t.test('a valid row becomes a COPY text line with its line number', (t) => {
  t.equal(stagingLine(row(), 7, date), '7\tch_1\tco-1\tm1\t1999\tEUR\t53\t1946\tsucceeded\t2031-03-01T10:11:12Z\tcharge\t\t\n')
  t.equal(stagingLine(row({ 2: 'a\tb\\c\nd' }), 2, date).split('\t')[2], 'a\\tb\\\\c\\nd', 'COPY specials escaped')
  t.equal(stagingLine(row({ 4: '-5', 6: '0', 7: '-5' }), 2, date).split('\t')[4], '-5', 'negative amounts (corrections) are integers too')
  t.equal(stagingLine(row({ 4: '999999999999999999', 6: '1', 7: '999999999999999998' }), 2, date).split('\t')[4], '999999999999999999', 'beyond 2^53: exact')
  t.end()
})

t.test('a refund line: negative amount, the refunded charge, our refund id (or none)', (t) => {
  const refund = row({ 1: 're_1', 4: '-500', 6: '0', 7: '-500', 10: 'refund', 11: 'ch_1', 12: 're_ours' })
  t.equal(stagingLine(refund, 9, date), '9\tre_1\tco-1\tm1\t-500\tEUR\t0\t-500\tsucceeded\t2031-03-01T10:11:12Z\trefund\tch_1\tre_ours\n')
  t.equal(stagingLine(row({ 1: 're_1', 4: '-500', 6: '0', 7: '-500', 10: 'refund', 11: 'ch_1' }), 9, date).split('\t')[12], '\n', 'refund_reference may be empty')
  t.end()
})

t.test('invalid rows name their line', (t) => {
  const bad: [Partial<Record<number, string>>, RegExp][] = [
    [{ 4: 'not-a-number' }, /amount "not-a-number" is not an integer/],
    [{ 4: '19.99' }, /amount "19.99" is not an integer/],
    [{ 6: '' }, /fee "" is not an integer/],
    [{ 7: '1947' }, /net 1947 is not amount 1999 - fee 53/],
    [{ 0: '2031-03-02' }, /settlement_date "2031-03-02" is not the report date/],
    [{ 5: 'eur' }, /currency "eur"/],
    [{ 8: '' }, /status ""/],
    [{ 9: '2031-03-01 10:11:12' }, /charged_at/],
    [{ 1: '' }, /psp_reference must be/],
    [{ 2: 'x'.repeat(300) }, /checkout_id must be/],
    [{ 10: 'payout' }, /type "payout" is not one of charge, refund/],
    [{ 10: '' }, /type ""/],
    [{ 11: 'ch_2' }, /a charge line has no charge nor refund_reference/],
    [{ 12: 're_ours' }, /a charge line has no charge nor refund_reference/],
    [{ 10: 'refund', 4: '-500', 6: '0', 7: '-500' }, /charge must be 1\.\.255 characters/],
  ]
  for (const [over, message] of bad) t.throws(() => stagingLine(row(over), 12, date), { code: 'report_malformed', line: 12, message }, String(message))
  t.throws(() => stagingLine(row().slice(0, 6), 3, date), { code: 'report_malformed', line: 3, message: /expected 13 columns, got 6/ })
  t.throws(() => stagingLine([...row(), 'extra'], 3, date), { message: /got 14/ })
  t.end()
})
