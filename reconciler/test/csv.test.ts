import t from 'tap'
import { CsvSplitter, parseCells, type CsvRecord } from '../csv.ts'
import { ReconcileError } from '../errors.ts'

function split (chunks: string[], max = 1000): CsvRecord[] {
  const splitter = new CsvSplitter(max)
  const records: CsvRecord[] = []
  for (const chunk of chunks) splitter.push(chunk, (r) => records.push(r))
  splitter.end()
  return records
}

const text = 'a,b,c\n1,"x, y",3\n"multi\nline",2,"say ""hi"""\r\nlast,,\n'
const expected = [
  { line: 1, cells: ['a', 'b', 'c'] },
  { line: 2, cells: ['1', 'x, y', '3'] },
  { line: 3, cells: ['multi\nline', '2', 'say "hi"'] },
  { line: 5, cells: ['last', '', ''] },
]

t.test('records, quoted cells, embedded newlines, CRLF, empty cells; line numbers count physical lines', (t) => {
  t.same(split([text]), expected)
  t.end()
})

t.test('any chunking gives the same records', (t) => {
  t.same(split(text.split('')), expected, 'one character at a time')
  for (let cut = 1; cut < text.length; cut++) t.same(split([text.slice(0, cut), text.slice(cut)]), expected, `cut at ${cut}`)
  t.end()
})

t.test('a last line without a newline is a truncated report, with its line number', (t) => {
  t.throws(() => split(['a,b\n1,2\n3,']), { code: 'report_truncated', line: 3 })
  t.throws(() => split(['a,b\n"open\nquote']), { code: 'report_truncated', line: 2 })
  t.same(split(['']), [], 'empty input is no records (the reconciler refuses a missing header)')
  t.end()
})

t.test('bad quoting and over-long records are malformed, with the line', (t) => {
  t.throws(() => split(['a,b\nx"y,2\n']), { code: 'report_malformed', line: 2, message: /quote inside unquoted cell 1/ })
  t.throws(() => split(['a,b\n"x"y,2\n']), { code: 'report_malformed', line: 2, message: /text after a closing quote/ })
  t.throws(() => split(['a,b\n' + 'x'.repeat(50) + '\n'], 20), { code: 'report_malformed', line: 2, message: /longer than 20/ })
  t.throws(() => split(['a,b\n' + 'x'.repeat(50)], 20), ReconcileError, 'an over-long tail without newline is refused before the end')
  t.end()
})

t.test('parseCells', (t) => {
  t.same(parseCells('', 1), [''])
  t.same(parseCells(',', 1), ['', ''])
  t.same(parseCells('"",x', 1), ['', 'x'])
  t.same(parseCells('"a",', 1), ['a', ''])
  t.throws(() => parseCells('"abc', 7), { code: 'report_malformed', line: 7, message: /unterminated/ })
  t.end()
})

t.test('a large input splits in linear time', (t) => {
  const line = '2031-01-01,ch_AAAAAAAAAAAAAAAAAAAAAAAA,co-1,m1,1999,EUR,53,1946,succeeded,2031-01-01T10:11:12Z\n'
  const chunk = line.repeat(1000)
  const splitter = new CsvSplitter(1000)
  let n = 0
  const t0 = performance.now()
  for (let i = 0; i < 200; i++) splitter.push(chunk.slice(0, 700) , () => n++), splitter.push(chunk.slice(700), () => n++)
  splitter.end()
  t.equal(n, 200_000)
  t.ok(performance.now() - t0 < 5_000, `200k records in ${Math.round(performance.now() - t0)} ms`)
  t.end()
})

t.test('Nimbus\' report read into the settlement columns (issue #16)', async (t) => {
  const { nimbusAsSettlementCsv } = await import('../psp-source.ts')
  const nimbus = [
    'Merchant Account;Psp Reference;Merchant Reference;Type;Booking Date;Currency;Gross;Commission;Net;Original Reference;Modification Reference',
    'merchant_demo;ch_1;co-1;Settled;2031-03-01T10:11:12Z;NOK;1999;40;1959;;',
    'merchant_demo;re_1;co-1;Refunded;2031-03-01T11:00:00Z;NOK;-500;0;-500;ch_1;rf_ours',
  ].join('\n') + '\n'
  // Split mid-line, as a stream would.
  async function * chunks (): AsyncGenerator<string> { yield nimbus.slice(0, 150); yield nimbus.slice(150) }
  let out = ''
  for await (const part of nimbusAsSettlementCsv(chunks(), '2031-03-01')) out += part.toString('utf8')
  t.same(out.trim().split('\n'), [
    'settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference',
    '2031-03-01,ch_1,co-1,merchant_demo,1999,NOK,40,1959,succeeded,2031-03-01T10:11:12Z,charge,,',
    '2031-03-01,re_1,co-1,merchant_demo,-500,NOK,0,-500,succeeded,2031-03-01T11:00:00Z,refund,ch_1,rf_ours',
  ])
})
