// The Nimbus sandbox PSP in-process (issue #16): its own API over the sandbox engine, the
// asynchronous authorisation whose outcome comes in a batched notification, each item signed on
// its own, refunds, lookups by reference, idempotency, its settlement report.

import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createLogger } from '../../lib/log.ts'
import { startNimbusPsp } from '../nimbus.ts'
import { nimbusSettlementHeader } from '../settlement-report.ts'
import { verifyItem } from '../signature.ts'

const apiKey = 'nk_test_0123456789abcdef'
const hmacKey = 'hmac_test_0123456789abcdef'
const deadlineMs = 10_000

// The receiver: every batch as it arrived (path and items).
const batches: Array<{ path: string, items: any[] }> = []
const receiver = createServer((req, res) => {
  let text = ''
  req.on('data', (chunk) => { text += chunk })
  req.on('end', () => {
    batches.push({ path: req.url ?? '', items: (JSON.parse(text).notificationItems as any[]).map((i) => i.NotificationRequestItem) })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"received":true}')
  })
})
receiver.listen(0, '127.0.0.1')
await once(receiver, 'listening')
t.teardown(() => { receiver.close() })

const psp = await startNimbusPsp({
  dataDir: mkdtempSync(join(tmpdir(), 'nimbus-test-')), apiKey, hmacKey,
  notificationBaseUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
  notificationLimits: { batchWindowMs: 100 },
}, createLogger('nimbus-test', {}))
t.teardown(() => psp.stop())

async function api (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: any, text: string }> {
  const res = await fetch(`${psp.url}${path}`, {
    method, headers: { 'x-api-key': apiKey, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : undefined, text }
}

async function batchFor (reference: string, eventCode: string): Promise<any> {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    const item = batches.filter((b) => b.path === `/webhooks/psp/nimbus/${reference}`).flatMap((b) => b.items).find((i) => i.eventCode === eventCode)
    if (item !== undefined) return item
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no ${eventCode} notification for ${reference} within ${deadlineMs} ms`)
}

function payment (reference: string, token = 'pm_card_visa', value = 1999): Record<string, unknown> {
  return { merchantAccount: 'merchant_n', amount: { value, currency: 'NOK' }, reference, paymentMethod: { type: 'scheme', storedPaymentMethodId: token } }
}

t.test('a payment is received, then authorised by a signed notification; the lookup by reference agrees', async (t) => {
  const answer = await api('POST', '/v1/payments', payment('co_n1'), { 'idempotency-key': 'co_n1' })
  t.equal(answer.status, 200, answer.text)
  t.same(Object.keys(answer.body).sort(), ['merchantReference', 'pspReference', 'resultCode'])
  t.equal(answer.body.resultCode, 'Received', 'asynchronous: no outcome on the API')
  const item = await batchFor('co_n1', 'AUTHORISATION')
  t.match(item, { success: 'true', pspReference: answer.body.pspReference, merchantReference: 'co_n1', amount: { value: 1999, currency: 'NOK' } })
  t.ok(verifyItem(hmacKey, item), 'signed with the HMAC key')
  t.notOk(verifyItem('another key', item))
  const found = await api('GET', '/v1/payments?merchantReference=co_n1')
  t.match(found.body.payments, [{ pspReference: answer.body.pspReference, status: 'Authorised', amount: { value: 1999, currency: 'NOK' } }])
  t.same((await api('GET', '/v1/payments?merchantReference=co_none')).body.payments, [], 'none for an unknown reference')
})

t.test('the same key again answers the same payment; other parameters under it are refused', async (t) => {
  const first = await api('POST', '/v1/payments', payment('co_n2'), { 'idempotency-key': 'co_n2' })
  const again = await api('POST', '/v1/payments', payment('co_n2'), { 'idempotency-key': 'co_n2' })
  t.equal(again.body.pspReference, first.body.pspReference)
  const other = await api('POST', '/v1/payments', payment('co_n2', 'pm_card_visa', 5), { 'idempotency-key': 'co_n2' })
  t.match(other, { status: 422, body: { errorCode: 'idempotency_mismatch' } })
  const charges = await api('GET', '/admin/charges?idempotency_key=co_n2')
  t.equal(charges.body.data.length, 1, 'one charge under the key')
})

t.test('a decline is notified as a refused authorisation with its reason', async (t) => {
  await api('POST', '/v1/payments', payment('co_n3', 'pm_card_declined'), { 'idempotency-key': 'co_n3' })
  t.match(await batchFor('co_n3', 'AUTHORISATION'), { success: 'false', reason: /^card_declined: / })
})

t.test('a refund is received, then notified; its lookup by key agrees', async (t) => {
  const paid = await api('POST', '/v1/payments', payment('co_n4'), { 'idempotency-key': 'co_n4' })
  await batchFor('co_n4', 'AUTHORISATION')
  const refund = await api('POST', `/v1/payments/${paid.body.pspReference}/refunds`, { amount: { value: 500, currency: 'NOK' }, reference: 'rf_1' }, { 'idempotency-key': 'refund_rf_1' })
  t.match(refund, { status: 201, body: { paymentPspReference: paid.body.pspReference, reference: 'rf_1', status: 'received' } })
  t.match(await batchFor('co_n4', 'REFUND'), { success: 'true', pspReference: refund.body.pspReference, originalReference: paid.body.pspReference, additionalData: { modificationReference: 'rf_1' } })
  t.match((await api('GET', '/v1/refunds?idempotencyKey=refund_rf_1')).body.refunds, [{ pspReference: refund.body.pspReference, status: 'Refunded', amount: { value: 500 } }])
})

t.test('its settlement report is in its own format', async (t) => {
  const date = new Date().toISOString().slice(0, 10)
  const report = await api('GET', `/v1/reports/settlement/${date}.csv`)
  t.equal(report.status, 200)
  const lines = report.text.trim().split('\n')
  t.equal(lines[0], nimbusSettlementHeader)
  const settled = lines.find((l) => l.includes(';co_n1;'))!
  t.match(settled, /^merchant_n;ch_[^;]+;co_n1;Settled;[^;]+;NOK;1999;\d+;\d+;;$/)
  t.match(lines.find((l) => l.includes(';Refunded;')), /;NOK;-500;0;-500;ch_[^;]+;rf_1$/)
})

t.test('its own credentials and errors', async (t) => {
  const res = await fetch(`${psp.url}/v1/payments?merchantReference=x`, { headers: { authorization: `Bearer ${apiKey}` } })
  t.equal(res.status, 401, 'a bearer token is not its scheme')
  t.match(await res.json(), { status: 401, errorCode: 'unauthorized', errorType: 'security' })
  t.match(await api('POST', '/v1/payments', payment('co_n5')), { status: 400, body: { errorCode: 'idempotency_key_required' } })
  t.match(await api('PUT', '/admin/config', { webhookBaseUrl: 'http://elsewhere' }), { status: 422 }, 'its engine\'s notifications stay its own')
})
