// The running API, through nginx, against openapi/ringpay.openapi.json: every response's status is
// documented for its route, its body validates against the documented schema, every problem code
// in the registry is documented (and no other), and every documented status we can provoke is seen.

import { readFileSync } from 'node:fs'
import { Ajv2020 } from 'ajv/dist/2020.js'
import t from 'tap'
import { problems } from '../../payment-svc/errors.ts'
import { signWebhook } from '../../lib/webhook-signature.ts'
import { call, createPayment, newCheckoutId, validBody, type ApiResponse } from '../helpers/api.ts'
import { createSettledForAction, createWith, nodeReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'
import { notifierCall, pollUntil, WebhookReceiver } from '../helpers/webhooks.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const spec = JSON.parse(readFileSync(new URL('../../openapi/ringpay.openapi.json', import.meta.url), 'utf8'))

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
ajv.addSchema({ $id: 'spec', components: spec.components })

function schemaFor (ref: string): ReturnType<typeof ajv.compile> {
  return ajv.compile({ $ref: `spec${ref}` })
}

function resolveResponse (response: Record<string, any>): Record<string, any> {
  if (typeof response.$ref === 'string') return spec.components.responses[String(response.$ref.split('/').pop())]
  return response
}

// Statuses that need a node down, overloaded or busy, a slow client or an abuse limit: covered by
// test/faults, test/infra/abuse-limits.test.ts, test/api/abuse-limits.test.ts and
// payment-svc/test/overload.test.ts, not provoked here.
// The notifier's 409s (16 endpoints of a merchant; a disabled endpoint) are provoked by
// test/api/webhooks.test.ts.
const provokedElsewhere = new Set(['408', '429', '503', '504', 'post /webhooks/psp/{provider}/{checkout_id} 409',
  'post /webhook_endpoints 409', 'post /events/{event_id}/redeliver 409'])
const seen = new Set<string>()

function check (t: any, route: string, method: string, res: ApiResponse): void {
  const operation = spec.paths[route]?.[method]
  t.ok(operation, `${method.toUpperCase()} ${route} is documented`)
  const documented = operation.responses[String(res.status)]
  t.ok(documented, `${method.toUpperCase()} ${route} documents status ${res.status}`)
  if (documented === undefined) return
  seen.add(`${method} ${route} ${res.status}`)
  const response = resolveResponse(documented)
  const contentType = String(res.headers['content-type']).split(';')[0]!
  const media = response.content?.[contentType]
  t.ok(media, `${res.status} is documented as ${contentType}`)
  if (media === undefined) return
  const validate = schemaFor(media.schema.$ref)
  t.ok(validate(contentType === 'text/csv' ? res.text : res.body), `${method.toUpperCase()} ${route} ${res.status} body matches: ${ajv.errorsText(validate.errors)}`)
}

t.test('the problem registry and the document list the same codes', (t) => {
  const documented = spec.components.schemas.ProblemCode.enum as string[]
  t.same([...documented].sort(), Object.keys(problems).sort())
  t.equal(Object.keys(problems).length, 44, 'a new code must be documented and this count raised')
  t.end()
})

t.test('responses match the document', async (t) => {
  const id = newCheckoutId('oas')
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, id, { ...validBody, metadata: { a: 'b' } }))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, id, { ...validBody, metadata: { a: 'b' } }))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, id, { ...validBody, amount: 1 }))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, stack.apiKeys.merchant_other, id))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, newCheckoutId('oas'), { amount: -1 }))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, newCheckoutId('oas'), '{'))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, 'bad', newCheckoutId('oas')))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, newCheckoutId('oas'), 'x', { 'content-type': 'text/plain' }))
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, key, newCheckoutId('oas'), 'x'.repeat(20_000)))
  check(t, '/payments', 'post', await call(`${stack.publicUrl}/payments`, { method: 'PUT', headers: { 'x-payment-checkout-id': id } }))
  const auth = { authorization: `Bearer ${key}` }
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}`, { headers: auth }))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}?wait_ms=10`, { headers: auth }))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${newCheckoutId('oas')}`, { headers: auth }))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}?wait_ms=x`, { headers: auth }))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}`))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}`, { method: 'POST', headers: auth }))

  const cancel = '/payments/{checkout_id}/cancel'
  const postCancel = (checkoutId: string, headers: Record<string, string> = auth): Promise<ApiResponse> =>
    call(`${stack.publicUrl}/payments/${checkoutId}/cancel`, { method: 'POST', headers })
  // Parked at requires_action by the processor, so nothing else moves it: canceled (200), again.
  const { id: parkedId } = await createSettledForAction('oas')
  check(t, cancel, 'post', await postCancel(parkedId, {}))
  check(t, cancel, 'post', await postCancel(parkedId, { ...auth, 'x-payment-checkout-id': newCheckoutId('oas') }))
  check(t, cancel, 'post', await call(`${stack.publicUrl}/payments/${parkedId}/cancel`, { headers: auth }))
  check(t, cancel, 'post', await postCancel(parkedId))
  check(t, cancel, 'post', await postCancel(parkedId))
  check(t, cancel, 'post', await postCancel(newCheckoutId('oas')))
  // A final payment is not cancelable (409).
  const settled = (await nodeReaches(await createWith('pm_card_visa', 'oas'), 60_000)).checkout_id
  check(t, cancel, 'post', await postCancel(settled))

  // Manual capture (issue #14): a manual payment parked at requires_capture by the processor.
  const capture = '/payments/{checkout_id}/capture'
  const postCapture = (checkoutId: string, body: string | undefined, headers: Record<string, string> = {}): Promise<ApiResponse> =>
    call(`${stack.publicUrl}/payments/${checkoutId}/capture`, {
      method: 'POST', headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(body !== undefined ? { body } : {}),
    })
  const manualId = newCheckoutId('oas')
  await createPayment(stack.publicUrl, key, manualId, { ...validBody, capture_method: 'manual' })
  await nodeReaches(manualId, 60_000, new Set(['requires_capture']))
  check(t, capture, 'post', await postCapture(manualId, '{"amount":100000}'))
  check(t, capture, 'post', await postCapture(manualId, '{"amount":"x"}'))
  check(t, capture, 'post', await postCapture(manualId, 'x', { 'content-type': 'text/plain' }))
  check(t, capture, 'post', await postCapture(manualId, JSON.stringify({ amount: 1, pad: 'x'.repeat(20_000) })))
  check(t, capture, 'post', await postCapture(manualId, '{}', { authorization: 'Bearer bad' }))
  check(t, capture, 'post', await postCapture(manualId, '{}', { authorization: `Bearer ${stack.apiKeys.merchant_demo_read}` }))
  check(t, capture, 'post', await call(`${stack.publicUrl}/payments/${manualId}/capture`, { headers: auth }))
  check(t, capture, 'post', await postCapture(newCheckoutId('oas'), undefined))
  check(t, capture, 'post', await postCapture(manualId, '{"amount":1500}'))
  check(t, capture, 'post', await postCapture(manualId, '{"amount":1500}'))
  check(t, capture, 'post', await postCapture(manualId, '{"amount":1000}'))
  // The captured payment shows what was captured.
  const captured = await nodeReaches(manualId, 60_000)
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${captured.checkout_id}`, { headers: auth }))

  // Refunds (issue #14), on the settled payment above.
  const refunds = '/payments/{checkout_id}/refunds'
  const oneRefund = '/payments/{checkout_id}/refunds/{refund_id}'
  const postRefund = (checkoutId: string, idempotencyKey: string | undefined, body: string, headers: Record<string, string> = {}): Promise<ApiResponse> =>
    call(`${stack.publicUrl}/payments/${checkoutId}/refunds`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', ...(idempotencyKey !== undefined ? { 'idempotency-key': idempotencyKey } : {}), ...headers },
      body,
    })
  const made = await postRefund(settled, 'oas-1', '{"amount":100,"reason":"oas"}')
  check(t, refunds, 'post', made)
  check(t, refunds, 'post', await postRefund(settled, 'oas-1', '{"amount":100,"reason":"oas"}'))
  check(t, refunds, 'post', await postRefund(settled, 'oas-1', '{"amount":101}'))
  check(t, refunds, 'post', await postRefund(settled, 'oas-2', '{"amount":100000}'))
  check(t, refunds, 'post', await postRefund(settled, undefined, '{}'))
  check(t, refunds, 'post', await postRefund(settled, 'oas-3', '{"amount":"x"}'))
  check(t, refunds, 'post', await postRefund(settled, 'oas-4', '{}', { 'content-type': 'text/plain' }))
  check(t, refunds, 'post', await postRefund(settled, 'oas-5', JSON.stringify({ reason: 'x'.repeat(20_000) })))
  check(t, refunds, 'post', await postRefund(settled, 'oas-6', '{}', { authorization: 'Bearer bad' }))
  check(t, refunds, 'post', await postRefund(newCheckoutId('oas'), 'oas-7', '{}'))
  check(t, refunds, 'post', await call(`${stack.publicUrl}/payments/${settled}/refunds`, { headers: auth }))
  check(t, oneRefund, 'get', await call(`${stack.publicUrl}/payments/${settled}/refunds/${String(made.body.id)}`, { headers: auth }))
  check(t, oneRefund, 'get', await call(`${stack.publicUrl}/payments/${settled}/refunds/re_unknown`, { headers: auth }))
  check(t, oneRefund, 'get', await call(`${stack.publicUrl}/payments/${settled}/refunds/re_unknown`))
  check(t, oneRefund, 'get', await call(`${stack.publicUrl}/payments/${settled}/refunds/re_x`, { headers: { ...auth, 'x-payment-checkout-id': newCheckoutId('oas') } }))
  check(t, oneRefund, 'get', await call(`${stack.publicUrl}/payments/${settled}/refunds/re_x`, { method: 'POST', headers: auth }))
  // The payment now shows its refund.
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${settled}`, { headers: auth }))

  const hook = '/webhooks/psp/{provider}/{checkout_id}'
  const event = (checkoutId: string): string => JSON.stringify({
    id: `evt_oas_${checkoutId}`, type: 'charge.pending', created: Math.floor(Date.now() / 1000),
    data: { object: { id: 'ch_oas', status: 'pending', amount: 1999, currency: 'EUR', reference: checkoutId, merchant_id: 'merchant_demo' } },
  })
  const postHook = (provider: string, checkoutId: string, body: string, headers: Record<string, string>): Promise<ApiResponse> =>
    call(`${stack.publicUrl}/webhooks/psp/${provider}/${checkoutId}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const signed = (body: string): Record<string, string> => ({ 'ringpay-signature': signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), body) })
  // Parked at requires_action by the processor, so no transition of its own races the webhook.
  const { id: hookId } = await createSettledForAction('oas')
  check(t, hook, 'post', await postHook('sandbox', hookId, event(hookId), signed(event(hookId))))
  check(t, hook, 'post', await postHook('sandbox', hookId, event(hookId), {}))
  check(t, hook, 'post', await postHook('sandbox', hookId, '{"id":1}', signed('{"id":1}')))
  check(t, hook, 'post', await postHook('nopsp', hookId, event(hookId), signed(event(hookId))))
  check(t, hook, 'post', await postHook('sandbox', hookId, event(hookId), { 'content-type': 'text/plain', ...signed(event(hookId)) }))
})

t.test('a restricted (read) key: reads, but 403 on what writes', async (t) => {
  const readKey = stack.apiKeys.merchant_demo_read
  const id = newCheckoutId('oas')
  check(t, '/payments', 'post', await createPayment(stack.publicUrl, readKey, id))
  check(t, '/payments/{checkout_id}/cancel', 'post', await call(`${stack.publicUrl}/payments/${id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${readKey}` } }))
  check(t, '/payments/{checkout_id}', 'get', await call(`${stack.publicUrl}/payments/${id}`, { headers: { authorization: `Bearer ${readKey}` } }))
  check(t, '/payments/{checkout_id}/refunds', 'post', await call(`${stack.publicUrl}/payments/${id}/refunds`, {
    method: 'POST', headers: { authorization: `Bearer ${readKey}`, 'content-type': 'application/json', 'idempotency-key': 'oas-read-key' }, body: '{}',
  }))
})

t.test('the reporting service\'s responses match the document', async (t) => {
  const auth = { authorization: `Bearer ${key}` }
  const range = 'created%5Bgte%5D=2026-12-01&created%5Blt%5D=2026-12-31'
  check(t, '/payments', 'get', await call(`${stack.publicUrl}/payments?limit=3`, { headers: auth }))
  check(t, '/payments', 'get', await call(`${stack.publicUrl}/payments?limit=0`, { headers: auth }))
  check(t, '/payments', 'get', await call(`${stack.publicUrl}/payments`))
  const csv = '/reports/payments.csv'
  check(t, csv, 'get', await call(`${stack.publicUrl}${csv}?${range}`, { headers: auth }))
  check(t, csv, 'get', await call(`${stack.publicUrl}${csv}`, { headers: auth }))
  check(t, csv, 'get', await call(`${stack.publicUrl}${csv}?${range}`))
  check(t, csv, 'get', await call(`${stack.publicUrl}${csv}`, { method: 'POST', headers: auth }))
  check(t, '/refunds', 'get', await call(`${stack.publicUrl}/refunds?limit=3`, { headers: auth }))
  check(t, '/refunds', 'get', await call(`${stack.publicUrl}/refunds?status=canceled`, { headers: auth }))
  check(t, '/refunds', 'get', await call(`${stack.publicUrl}/refunds`))
  const refundsCsv = '/reports/refunds.csv'
  check(t, refundsCsv, 'get', await call(`${stack.publicUrl}${refundsCsv}?${range}`, { headers: auth }))
  check(t, refundsCsv, 'get', await call(`${stack.publicUrl}${refundsCsv}`, { headers: auth }))
  check(t, refundsCsv, 'get', await call(`${stack.publicUrl}${refundsCsv}?${range}`))
  check(t, refundsCsv, 'get', await call(`${stack.publicUrl}${refundsCsv}`, { method: 'POST', headers: auth }))
})

t.test('the notifier\'s responses (merchant webhooks) match the document', async (t) => {
  const readKey = stack.apiKeys.merchant_demo_read
  const n = (k: string | undefined, method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse> =>
    notifierCall(stack.publicUrl, k, method, path, body, headers)
  const receiver = await WebhookReceiver.start()
  t.teardown(() => receiver.close())
  const endpoints = '/webhook_endpoints'
  const created = await n(key, 'POST', endpoints, { url: receiver.url, events: ['*'] })
  check(t, endpoints, 'post', created)
  const endpointId = String(created.body.id)
  t.teardown(() => n(key, 'DELETE', `${endpoints}/${endpointId}`))
  check(t, endpoints, 'post', await n(key, 'POST', endpoints, { url: 'http://10.0.0.1/', events: ['*'] }))
  check(t, endpoints, 'post', await n(key, 'POST', endpoints, { url: receiver.url }))
  check(t, endpoints, 'post', await n(undefined, 'POST', endpoints, { url: receiver.url, events: ['*'] }))
  check(t, endpoints, 'post', await n(readKey, 'POST', endpoints, { url: receiver.url, events: ['*'] }))
  check(t, endpoints, 'post', await n(key, 'PUT', endpoints, {}))
  check(t, endpoints, 'post', await n(key, 'POST', endpoints, JSON.stringify({ url: 'x'.repeat(10_000), events: ['*'] })))
  check(t, endpoints, 'post', await n(key, 'POST', endpoints, 'x', { 'content-type': 'text/plain' }))
  check(t, endpoints, 'get', await n(readKey, 'GET', endpoints))
  check(t, endpoints, 'get', await n(undefined, 'GET', endpoints))

  const roll = '/webhook_endpoints/{endpoint_id}/roll_secret'
  check(t, roll, 'post', await n(key, 'POST', `${endpoints}/${endpointId}/roll_secret`, { grace_period_s: 60 }))
  check(t, roll, 'post', await n(key, 'POST', `${endpoints}/${endpointId}/roll_secret`, { grace_period_s: 'x' }))
  check(t, roll, 'post', await n(undefined, 'POST', `${endpoints}/${endpointId}/roll_secret`))
  check(t, roll, 'post', await n(readKey, 'POST', `${endpoints}/${endpointId}/roll_secret`))
  check(t, roll, 'post', await n(key, 'POST', `${endpoints}/we_unknown/roll_secret`))

  // An event to list and redeliver: a payment of this merchant, now that it has an endpoint.
  const paid = newCheckoutId('oas')
  await createPayment(stack.publicUrl, key, paid)
  const events = '/events'
  const eventId = await pollUntil('an event of the payment', async () => {
    const res = await n(key, 'GET', `${events}?checkout_id=${paid}`)
    return res.body?.data?.[0]?.id as string | undefined
  }, 30_000)
  check(t, events, 'get', await n(readKey, 'GET', `${events}?limit=2`))
  check(t, events, 'get', await n(key, 'GET', `${events}?limit=x`))
  check(t, events, 'get', await n(undefined, 'GET', events))
  check(t, events, 'get', await n(key, 'POST', events))
  const oneEvent = '/events/{event_id}'
  check(t, oneEvent, 'get', await n(readKey, 'GET', `${events}/${eventId}`))
  check(t, oneEvent, 'get', await n(undefined, 'GET', `${events}/${eventId}`))
  check(t, oneEvent, 'get', await n(key, 'GET', `${events}/evt_unknown`))
  check(t, oneEvent, 'get', await n(key, 'DELETE', `${events}/${eventId}`))
  const redeliver = '/events/{event_id}/redeliver'
  check(t, redeliver, 'post', await n(key, 'POST', `${events}/${eventId}/redeliver`))
  check(t, redeliver, 'post', await n(key, 'POST', `${events}/${eventId}/redeliver`, { endpoint: 'x' }))
  check(t, redeliver, 'post', await n(undefined, 'POST', `${events}/${eventId}/redeliver`))
  check(t, redeliver, 'post', await n(readKey, 'POST', `${events}/${eventId}/redeliver`))
  check(t, redeliver, 'post', await n(key, 'POST', `${events}/evt_unknown/redeliver`))

  const enable = '/webhook_endpoints/{endpoint_id}/enable'
  check(t, enable, 'post', await n(key, 'POST', `${endpoints}/${endpointId}/enable`))
  check(t, enable, 'post', await n(undefined, 'POST', `${endpoints}/${endpointId}/enable`))
  check(t, enable, 'post', await n(readKey, 'POST', `${endpoints}/${endpointId}/enable`))
  check(t, enable, 'post', await n(key, 'POST', `${endpoints}/we_unknown/enable`))

  const one = '/webhook_endpoints/{endpoint_id}'
  check(t, one, 'delete', await n(undefined, 'DELETE', `${endpoints}/${endpointId}`))
  check(t, one, 'delete', await n(readKey, 'DELETE', `${endpoints}/${endpointId}`))
  check(t, one, 'delete', await n(key, 'GET', `${endpoints}/${endpointId}`))
  check(t, one, 'delete', await n(key, 'DELETE', `${endpoints}/${endpointId}`))
  check(t, one, 'delete', await n(key, 'DELETE', `${endpoints}/${endpointId}`))
})

t.test('every documented status is provoked here or in the fault tests', (t) => {
  for (const [route, operations] of Object.entries<Record<string, any>>(spec.paths)) {
    for (const [method, operation] of Object.entries<Record<string, any>>(operations)) {
      for (const status of Object.keys(operation.responses)) {
        if (provokedElsewhere.has(status) || provokedElsewhere.has(`${method} ${route} ${status}`)) continue
        t.ok(seen.has(`${method} ${route} ${status}`), `${method.toUpperCase()} ${route} ${status} was exercised`)
      }
    }
  }
  t.end()
})

t.test('undocumented routes are 404 problems', async (t) => {
  const res = await call(`${stack.publicUrl}/disputes`, { headers: { 'x-payment-checkout-id': 'abc' } })
  t.equal(res.status, 404)
  t.equal(res.body?.code, 'not_found')
})
