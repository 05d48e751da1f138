// Settlement reports: content for real charges, bulk generation, each discrepancy switch, and a
// large day streamed with backpressure (the producer stops while the reader does not read).

import { Writable } from 'node:stream'
import t from 'tap'
import { feeFor } from '../money.ts'
import { settlementHeader, writeSettlementReport } from '../settlement.ts'
import { call, charge, chargeBody, eventually, startPsp, stats } from './helpers.ts'

const columns = settlementHeader.split(',')

interface Row { [column: string]: string }

function parseCsv (text: string): { header: string, rows: Row[], lines: string[] } {
  const lines = text.split('\n')
  if (lines.at(-1) !== '') throw new Error('the file does not end with a newline')
  const [header, ...data] = lines.slice(0, -1)
  return {
    header: header!,
    lines: data,
    rows: data.map((line) => Object.fromEntries(line.split(',').map((cell, i) => [columns[i]!, cell]))),
  }
}

async function generate (url: string, body: Record<string, unknown>): Promise<any[]> {
  const reply = await call(`${url}/admin/generate`, { method: 'POST', body })
  if (reply.status !== 200) throw new Error(`generate answered ${reply.status}: ${reply.text}`)
  return reply.text.trim().split('\n').map((line) => JSON.parse(line))
}

t.test('a day lists every charge that succeeded on it, and nothing else', async (t) => {
  const psp = await startPsp(t, { runtime: { asyncDelayMs: 30 } })
  const today = new Date().toISOString().slice(0, 10)
  const succeeded = [
    (await charge(psp, chargeBody('pm_card_visa', { amount: 1999 }))).body,
    (await charge(psp, chargeBody('pm_card_mastercard', { amount: 1250, currency: 'JPY' }))).body,
  ]
  await charge(psp, chargeBody('pm_card_declined'))
  await charge(psp, chargeBody('pm_card_requires_action'))
  const asyncCharge = (await charge(psp, chargeBody('pm_card_async', { amount: 5000 }))).body
  await eventually(async () => ((await stats(psp)).charges.pending === 0 ? true : undefined), 'the async charge to settle')
  succeeded.push((await call(`${psp.url}/v1/charges/${asyncCharge.id}`)).body)

  const reply = await call(`${psp.url}/v1/settlements/${today}.csv`)
  t.equal(reply.status, 200)
  t.match(reply.headers['content-type'], /^text\/csv/)
  const { header, rows } = parseCsv(reply.text)
  t.equal(header, 'settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference')
  t.equal(rows.length, 3, 'the two sync and the async success; not the decline nor requires_action')
  t.same(rows.map((r) => r.psp_reference), [...rows.map((r) => r.psp_reference)].sort(), 'ordered by psp_reference')
  for (const c of succeeded) {
    const row = rows.find((r) => r.psp_reference === c.id)
    t.same(row, {
      settlement_date: today,
      psp_reference: c.id,
      checkout_id: c.reference,
      merchant_id: 'm_test',
      amount: String(c.amount),
      currency: c.currency,
      fee: String(feeFor(c.amount)),
      net: String(c.amount - feeFor(c.amount)),
      status: 'succeeded',
      charged_at: new Date(c.succeeded_at * 1000).toISOString().slice(0, 19) + 'Z',
      type: 'charge',
      charge: '',
      refund_reference: '',
    })
    t.equal(c.fee, feeFor(c.amount), 'the charge and the report agree on the fee')
  }
  const empty = await call(`${psp.url}/v1/settlements/2001-01-01.csv`)
  t.equal(empty.text, header + '\n', 'a day without charges is just the header')
  t.equal((await call(`${psp.url}/v1/settlements/2001-02-30.csv`)).status, 404, 'not a date')
})

t.test('a day lists every refund that succeeded on it after the charges: negative amount, no fee, its charge and reference', async (t) => {
  const psp = await startPsp(t, { runtime: { asyncDelayMs: 30 } })
  const today = new Date().toISOString().slice(0, 10)
  const refund = (key: string, body: Record<string, unknown>) => call(`${psp.url}/v1/refunds`, { method: 'POST', headers: { 'idempotency-key': key }, body })
  const visa = (await charge(psp, chargeBody('pm_card_visa', { amount: 1999 }))).body
  const async = (await charge(psp, chargeBody('pm_card_refund_async', { amount: 5000 }))).body
  const failing = (await charge(psp, chargeBody('pm_card_refund_fails', { amount: 700 }))).body
  const partial = (await refund('rr-1', { charge: visa.id, amount: 500, reference: 're_ours_1' })).body
  const rest = (await refund('rr-2', { charge: visa.id, amount: 1499, reference: 're_ours_2' })).body
  const later = (await refund('rr-3', { charge: async.id, amount: 5000, reference: 're_ours_3' })).body
  t.equal(later.status, 'pending')
  t.equal((await refund('rr-4', { charge: failing.id, amount: 700, reference: 're_ours_4' })).body.status, 'failed')
  await eventually(async () => ((await stats(psp)).refunds.pending === 0 ? true : undefined), 'the async refund to settle')

  const { rows } = parseCsv((await call(`${psp.url}/v1/settlements/${today}.csv`)).text)
  t.same(rows.map((r) => r.type), ['charge', 'charge', 'charge', 'refund', 'refund', 'refund'], 'three charges, then the succeeded refunds (not the failed one)')
  t.same(rows.map((r) => r.psp_reference), [...rows.map((r) => r.psp_reference)].sort(), 'ordered by psp_reference')
  const succeeded = [partial, rest, { ...later, ...(await call(`${psp.url}/v1/refunds/${later.id}`)).body }]
  for (const r of succeeded) {
    t.same(rows.find((row) => row.psp_reference === r.id), {
      settlement_date: today,
      psp_reference: r.id,
      checkout_id: r.payment_reference,
      merchant_id: 'm_test',
      amount: String(-r.amount),
      currency: r.currency,
      fee: '0',
      net: String(-r.amount),
      status: 'succeeded',
      charged_at: new Date(r.succeeded_at * 1000).toISOString().slice(0, 19) + 'Z',
      type: 'refund',
      charge: r.charge,
      refund_reference: r.reference,
    })
  }
  const net = rows.reduce((sum, r) => sum + Number(r.net), 0)
  t.equal(net, [visa, async, failing].reduce((sum, c) => sum + c.amount - feeFor(c.amount), 0) - 1999 - 5000, 'the net column sums to the payout')
})

t.test('bulk generation: NDJSON of what was written; refused twice; retrievable on request', async (t) => {
  const psp = await startPsp(t)
  const lines = await generate(psp.url, { date: '2025-03-01', count: 25, merchant_id: 'm_bulk', seed: 9 })
  const summary = lines.pop()
  t.match(summary, { object: 'generation_summary', date: '2025-03-01', count: 25, merchant_id: 'm_bulk', seed: 9, reference_prefix: 'gen-2025-03-01-9-' })
  t.equal(lines.length, 25)
  t.match(lines[0], { reference: 'gen-2025-03-01-9-0', psp_reference: /^ch_/, amount: Number, currency: 'EUR', fee: Number, net: Number, created: Number })
  for (const g of lines) t.equal(g.fee, feeFor(g.amount))
  const { rows } = parseCsv((await call(`${psp.url}/v1/settlements/2025-03-01.csv`)).text)
  t.equal(rows.length, 25)
  const byRef = new Map(lines.map((g) => [g.psp_reference, g]))
  for (const row of rows) {
    const g = byRef.get(row.psp_reference!)
    t.equal(row.checkout_id, g.reference)
    t.equal(Number(row.amount), g.amount)
    t.equal(Date.parse(row.charged_at!) / 1000, g.created)
    t.ok(row.charged_at!.startsWith('2025-03-01T'))
  }
  const again = await call(`${psp.url}/admin/generate`, { method: 'POST', body: { date: '2025-03-01', count: 25, merchant_id: 'm_bulk', seed: 9 } })
  t.equal(again.status, 409)
  t.equal(again.body.error.code, 'generation_exists')
  t.equal((await call(`${psp.url}/v1/charges?idempotency_key=gen-2025-03-01-9-0`)).body.data.length, 0, 'not retrievable by default')

  const sameSeed = await generate(psp.url, { date: '2025-03-01', count: 25, merchant_id: 'm_bulk', seed: 9, reference_prefix: 'other-', retrievable: true })
  t.same(sameSeed.slice(0, -1).map((g) => g.amount), lines.map((g) => g.amount), 'same seed and date, same amounts')
  // Keyed as a processor keys a charge: the merchant's checkout id (issue #17 part 5).
  const found = await call(`${psp.url}/v1/charges?idempotency_key=m_bulk%2Fother-3`)
  t.match(found.body.data[0], { id: sameSeed[3].psp_reference, status: 'succeeded', settled_on: '2025-03-01', amount: sameSeed[3].amount })
  t.equal((await call(`${psp.url}/admin/charges?idempotency_key=m_bulk%2Fother-3`)).body.data.length, 1)
  t.match((await stats(psp)).charges, { total: 50, succeeded: 50 })

  // Another merchant may use the same prefix (its own checkout ids): its own charges, its own keys.
  const otherMerchant = await generate(psp.url, { date: '2025-03-01', count: 5, merchant_id: 'm_bulk2', seed: 9, reference_prefix: 'other-', retrievable: true })
  t.equal(otherMerchant.length, 6, 'not generation_exists: another merchant\'s')
  t.equal((await call(`${psp.url}/admin/charges?idempotency_key=m_bulk2%2Fother-3`)).body.data.length, 1)
  t.equal((await call(`${psp.url}/admin/charges?idempotency_key=m_bulk%2Fother-3`)).body.data.length, 1, 'one charge per merchant and id')

  const bad = await call(`${psp.url}/admin/generate`, { method: 'POST', body: { date: '2025-13-01', count: 1, merchant_id: 'm' } })
  t.match(bad.body.error, { code: 'parameter_invalid', param: 'date' })
  const noCount = await call(`${psp.url}/admin/generate`, { method: 'POST', body: { date: '2025-01-01', merchant_id: 'm' } })
  t.match(noCount.body.error, { code: 'parameter_invalid', param: 'count' })
})

t.test('bulk generation with refunds: every k-th charge refunded on the same date, half or whole', async (t) => {
  const psp = await startPsp(t)
  const date = '2025-03-04'
  const lines = (await generate(psp.url, { date, count: 7, merchant_id: 'm_bulk', refund_every: 3 })).slice(0, -1)
  t.same(lines.map((g) => g.refund !== undefined), [true, false, false, true, false, false, true])
  const refunded = lines.filter((g) => g.refund !== undefined)
  for (const g of refunded) {
    t.match(g.refund, { reference: `${g.reference}-re`, psp_reference: /^re_/, amount: Math.max(1, Math.floor(g.amount / 2)) })
    t.ok(g.refund.created >= g.created && g.refund.created < Date.parse(`${date}T00:00:00Z`) / 1000 + 86_400, 'later the same day')
  }
  const { rows } = parseCsv((await call(`${psp.url}/v1/settlements/${date}.csv`)).text)
  t.equal(rows.length, 10)
  for (const g of refunded) {
    t.match(rows.find((r) => r.psp_reference === g.refund.psp_reference), { type: 'refund', amount: String(-g.refund.amount), charge: g.psp_reference,
      refund_reference: g.refund.reference, checkout_id: g.reference })
  }
  const whole = (await generate(psp.url, { date, count: 2, merchant_id: 'm_bulk', refund_every: 1, refund_whole: true, reference_prefix: 'whole-' })).slice(0, -1)
  for (const g of whole) t.equal(g.refund.amount, g.amount)
  const bad = await call(`${psp.url}/admin/generate`, { method: 'POST', body: { date, count: 2, merchant_id: 'm', refund_every: 3, reference_prefix: 'bad-' } })
  t.match(bad.body.error, { code: 'parameter_invalid', param: 'refund_every' })
})

t.test('discrepancy switches on refund lines: by refund id or our reference, never by the charge\'s checkout id', async (t) => {
  const psp = await startPsp(t)
  const date = '2025-04-06'
  const generated = (await generate(psp.url, { date, count: 4, merchant_id: 'm_rec', refund_every: 1 })).slice(0, -1)
  const [a, b, c, d] = generated
  const report = async (switches: Record<string, unknown>): Promise<Row[]> => {
    const put = await call(`${psp.url}/admin/settlements/${date}/discrepancies`, { method: 'PUT', body: switches })
    t.equal(put.status, 200, `PUT ${JSON.stringify(switches).slice(0, 60)}`)
    return parseCsv((await call(`${psp.url}/v1/settlements/${date}.csv`)).text).rows
  }
  const refundRow = (rows: Row[], g: any): Row[] => rows.filter((r) => r.psp_reference === g.refund.psp_reference)

  const missing = await report({ missingRows: [a.refund.psp_reference, b.refund.reference] })
  t.equal(missing.length, 6)
  t.same([refundRow(missing, a).length, refundRow(missing, b).length], [0, 0])
  t.equal(missing.filter((r) => r.type === 'charge').length, 4, 'the charges stay')
  const byCheckout = await report({ missingRows: [c.reference] })
  t.same([byCheckout.some((r) => r.psp_reference === c.psp_reference), refundRow(byCheckout, c).length], [false, 1], 'a checkout id switches the charge line only')

  const amounts = await report({ amountDelta: { [a.refund.psp_reference]: 7, [b.refund.reference]: -1 } })
  t.match(refundRow(amounts, a)[0], { amount: String(-(a.refund.amount + 7)), fee: '0', net: String(-(a.refund.amount + 7)) }, 'the refunded amount grows')
  t.equal(refundRow(amounts, b)[0]!.amount, String(-(b.refund.amount - 1)))
  t.equal(refundRow(await report({ statusOverride: { [c.refund.reference]: 'failed' } }), c)[0]!.status, 'failed')
  t.equal(refundRow(await report({ currencyOverride: { [d.refund.psp_reference]: 'USD' } }), d)[0]!.currency, 'USD')
  t.equal(refundRow(await report({ duplicateRows: [d.refund.reference] }), d).length, 2)

  const extra = await report({ extraRefundRows: 2, extraRows: 1 })
  t.equal(extra.length, 11)
  const fabricated = extra.slice(8)
  t.same(fabricated.map((r) => r.type), ['charge', 'refund', 'refund'])
  for (const row of fabricated.slice(1)) {
    t.match(row, { settlement_date: date, psp_reference: /^re_[0-9A-Za-z]{24}$/, charge: /^ch_/, refund_reference: /^fabricated-/, merchant_id: 'm_rec', fee: '0' })
    t.ok(Number(row.amount) < 0 && row.net === row.amount)
  }
  t.same((await report({ extraRefundRows: 2, extraRows: 1 })).slice(8), fabricated, 'the same fabrications on every download')
})

t.test('discrepancy switches, one at a time', async (t) => {
  const psp = await startPsp(t)
  const date = '2025-04-02'
  const generated = (await generate(psp.url, { date, count: 20, merchant_id: 'm_rec', seed: 3 })).slice(0, -1)
  const baseline = parseCsv((await call(`${psp.url}/v1/settlements/${date}.csv`)).text)
  t.equal(baseline.rows.length, 20)
  const [a, b, c] = baseline.rows
  const report = async (switches: Record<string, unknown>): Promise<string> => {
    const put = await call(`${psp.url}/admin/settlements/${date}/discrepancies`, { method: 'PUT', body: switches })
    t.equal(put.status, 200, `PUT ${JSON.stringify(switches).slice(0, 60)}`)
    return (await call(`${psp.url}/v1/settlements/${date}.csv`)).text
  }

  const missing = parseCsv(await report({ missingRows: [a!.psp_reference, b!.checkout_id] }))
  t.equal(missing.rows.length, 18)
  t.notOk(missing.rows.some((r) => r.psp_reference === a!.psp_reference || r.psp_reference === b!.psp_reference), 'by psp ref or checkout id')

  const extra = parseCsv(await report({ extraRows: 3 }))
  t.equal(extra.rows.length, 23)
  const fabricated = extra.rows.slice(20)
  const known = new Set(generated.map((g) => g.reference))
  for (const row of fabricated) {
    t.notOk(known.has(row.checkout_id!), 'a charge we never made')
    t.match(row, { settlement_date: date, psp_reference: /^ch_[0-9A-Za-z]{24}$/, merchant_id: 'm_rec', status: 'succeeded', currency: 'EUR' })
    t.equal(Number(row.fee), feeFor(Number(row.amount)))
  }
  t.same(parseCsv(await report({ extraRows: 3 })).rows.slice(20), fabricated, 'the same fabrications on every download')

  const amounts = parseCsv(await report({ amountDelta: { [a!.psp_reference!]: 100, [b!.checkout_id!]: -1 } }))
  const rowA = amounts.rows.find((r) => r.psp_reference === a!.psp_reference)!
  t.equal(Number(rowA.amount), Number(a!.amount) + 100)
  t.equal(Number(rowA.fee), feeFor(Number(a!.amount) + 100), 'fee follows the reported amount')
  t.equal(Number(rowA.net), Number(rowA.amount) - Number(rowA.fee))
  t.equal(Number(amounts.rows.find((r) => r.psp_reference === b!.psp_reference)!.amount), Number(b!.amount) - 1)

  const currency = parseCsv(await report({ currencyOverride: { [c!.psp_reference!]: 'USD' } }))
  t.equal(currency.rows.find((r) => r.psp_reference === c!.psp_reference)!.currency, 'USD')
  t.equal(currency.rows.filter((r) => r.currency === 'USD').length, 1)

  const status = parseCsv(await report({ statusOverride: { [a!.checkout_id!]: 'refunded' } }))
  t.equal(status.rows.find((r) => r.psp_reference === a!.psp_reference)!.status, 'refunded')

  const duplicate = parseCsv(await report({ duplicateRows: [b!.psp_reference] }))
  t.equal(duplicate.rows.length, 21)
  t.equal(duplicate.rows.filter((r) => r.psp_reference === b!.psp_reference).length, 2)

  const truncatedText = await report({ truncateAfterRows: 5 })
  t.notOk(truncatedText.endsWith('\n'), 'cut mid-line')
  const truncatedLines = truncatedText.split('\n')
  t.equal(truncatedLines.length, 7, 'header, 5 full rows, one partial')
  t.same(truncatedLines.slice(1, 6), baseline.lines.slice(0, 5))
  t.ok(baseline.lines[5]!.startsWith(truncatedLines[6]!) && truncatedLines[6]!.length < baseline.lines[5]!.length, 'the partial row is a prefix of the real one')

  const malformed = parseCsv(await report({ malformedRow: 2 }))
  t.equal(malformed.lines[1]!.split(',').length, 6, 'row 2 has 6 columns')
  t.equal(malformed.rows[1]!.amount, 'not-a-number')
  t.same(malformed.lines[0], baseline.lines[0], 'the others are untouched')

  const combined = parseCsv(await report({ missingRows: [a!.psp_reference], duplicateRows: [b!.psp_reference], extraRows: 1 }))
  t.equal(combined.rows.length, 21)

  t.same((await call(`${psp.url}/admin/settlements/${date}/discrepancies`)).body, { missingRows: [a!.psp_reference], duplicateRows: [b!.psp_reference], extraRows: 1 })
  t.equal((await call(`${psp.url}/admin/settlements/${date}/discrepancies`, { method: 'DELETE' })).status, 200)
  t.equal((await call(`${psp.url}/v1/settlements/${date}.csv`)).text, [baseline.header, ...baseline.lines, ''].join('\n'), 'cleared')
  t.equal((await call(`${psp.url}/admin/settlements/2025-04-03/discrepancies`)).text, '{}', 'other dates untouched')

  const unknown = await call(`${psp.url}/admin/settlements/${date}/discrepancies`, { method: 'PUT', body: { missingRow: [] } })
  t.match(unknown.body.error, { code: 'parameter_unknown', param: 'missingRow' })
  const badCurrency = await call(`${psp.url}/admin/settlements/${date}/discrepancies`, { method: 'PUT', body: { currencyOverride: { x: 'usd' } } })
  t.match(badCurrency.body.error, { code: 'parameter_invalid', param: 'currencyOverride' })
  const badDate = await call(`${psp.url}/admin/settlements/2025-4-2/discrepancies`, { method: 'PUT', body: {} })
  t.equal(badDate.status, 400)
})

t.test('a large day: 50,000 rows, streamed with backpressure', async (t) => {
  const psp = await startPsp(t)
  const date = '2025-05-05'
  const count = 50_000
  const generated = (await generate(psp.url, { date, count, merchant_id: 'm_big', seed: 5 })).slice(0, -1)
  t.equal(generated.length, count)

  // Over HTTP: every row, the amounts add up.
  const reply = await call(`${psp.url}/v1/settlements/${date}.csv`, { timeoutMs: 30_000 })
  const lines = reply.text.split('\n')
  t.equal(lines.length, count + 2, 'header, 50,000 rows, final newline')
  let sum = 0
  for (const line of lines.slice(1, -1)) sum += Number(line.split(',')[4])
  t.equal(sum, generated.reduce((total, g) => total + g.amount, 0))

  // In-process with a reader that does not read: the producer must stop and wait for 'drain'.
  const held: Array<() => void> = []
  let bytesAccepted = 0
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write (chunk: Buffer, _encoding, callback) {
      bytesAccepted += chunk.length
      held.push(callback)
    },
  })
  const limits = psp.context.limits
  const streamed = writeSettlementReport(psp.context.store, date, sink, limits)
  await eventually(() => (sink.listenerCount('drain') > 0 ? true : undefined), 'the producer to wait for drain')
  // writableLength counts the chunk being written too: everything produced and not yet consumed.
  const rowBytesMax = 130 // a charge line with ordinary ids is ~128 bytes
  const producedBytes = sink.writableLength
  t.ok(producedBytes <= limits.settlementReadBatchRows * rowBytesMax,
    `one read batch (${producedBytes} bytes) produced while the reader was stalled; the day is ${Buffer.byteLength(reply.text)}`)
  // Let the reader go: the rest flows.
  sink._write = (chunk: Buffer, _encoding, callback) => { bytesAccepted += chunk.length; callback() }
  for (const callback of held.splice(0)) callback()
  const result = await streamed
  t.same(result, { rows: count, truncated: false })
  t.equal(bytesAccepted, Buffer.byteLength(reply.text), 'the same bytes as over HTTP')
})
