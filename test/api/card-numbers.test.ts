// Card numbers never get through, never get stored, never get logged: the corpus of shapes
// (test/helpers/card-number-corpus.ts) through nginx and the nodes, in create bodies (values and
// keys), the checkout id in the header and the path, and signed webhooks (body and path). A
// fresh PAN per run; at the end, the nodes' logs and nginx's access log must not hold it.

import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { signWebhook } from '../../lib/webhook-signature.ts'
import { call, createPayment, eventually, getFromNode, getPayment, newCheckoutId, validBody, type ApiResponse } from '../helpers/api.ts'
import { acceptedCases, freshPan, refusedShapes } from '../helpers/card-number-corpus.ts'
import { createSettledForAction } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const key = stack.apiKeys.merchant_demo
const auth = { authorization: `Bearer ${key}` }
const pan = freshPan()
const shapes = refusedShapes.map((shape) => ({ label: shape.label, ...shape.render(pan) }))
const safeIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const logDeadlineMs = 5_000

function assertCardRefused (t: Test, res: ApiResponse, what: string): void {
  t.equal(res.status, 400, `${what}: 400 (${res.text.slice(0, 200)})`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, `${what}: problem+json`)
  t.equal(res.body?.code, 'card_number_detected', `${what}: card_number_detected`)
  t.notOk(res.text.includes(pan.slice(0, 12)), `${what}: the answer does not echo the number`)
}

/** No node holds a payment under `id` (read on each node's admin port, bypassing nginx). */
async function storedNowhere (t: Test, id: string, what: string): Promise<void> {
  for (const node of stack.nodes) {
    const res = await getFromNode(node.adminPort, stack.internalTokens.audit, encodeURIComponent(id))
    t.not(res.status, 200, `${what}: not stored on ${node.id}`)
  }
}

function bodyWith (field: 'description' | 'metadata value' | 'metadata key', json: string): string {
  const base = '"amount":1999,"currency":"EUR","payment_method":"pm_card_visa"'
  if (field === 'description') return `{${base},"description":${json}}`
  if (field === 'metadata value') return `{${base},"metadata":{"note":${json}}}`
  return `{${base},"metadata":{${json}:"x"}}`
}

t.test('create bodies: every refused shape, in a description, a metadata value and a metadata key', async (t) => {
  for (const shape of shapes) {
    for (const field of ['description', 'metadata value', 'metadata key'] as const) {
      const id = newCheckoutId('pan')
      const res = await createPayment(stack.publicUrl, key, id, bodyWith(field, shape.json ?? JSON.stringify(shape.value)))
      assertCardRefused(t, res, `${shape.label} in ${field}`)
      t.equal((await getPayment(stack.publicUrl, key, id)).status, 404, `${shape.label} in ${field}: nothing stored`)
    }
  }
})

t.test('create bodies: the accepted cases are stored as sent', async (t) => {
  for (const { label, value } of acceptedCases) {
    const id = newCheckoutId('look')
    const res = await createPayment(stack.publicUrl, key, id, { ...validBody, description: value, metadata: { note: value } })
    t.equal(res.status, 202, `${label}: ${res.text.slice(0, 200)}`)
    const read = await getPayment(stack.publicUrl, key, id)
    t.equal(read.body?.description, value, `${label}: description stored as sent`)
    t.equal(read.body?.metadata?.note, value, `${label}: metadata stored as sent`)
  }
})

t.test('checkout id in the header', async (t) => {
  // Header values must be printable ASCII to be sent at all (undici refuses the rest).
  for (const shape of shapes.filter((s) => /^[\x20-\x7e]+$/.test(s.value))) {
    const res = await createPayment(stack.publicUrl, key, shape.value)
    if (safeIdPattern.test(shape.value)) {
      assertCardRefused(t, res, `header ${shape.label}`)
      await storedNowhere(t, shape.value, `header ${shape.label}`)
    } else {
      // Not a well-formed id: nginx refuses it before routing (it cannot check Luhn).
      t.equal(res.status, 400, `header ${shape.label}: 400`)
      t.equal(res.body?.code, 'checkout_id_invalid', `header ${shape.label}: refused by nginx`)
    }
  }
  for (const { label, value } of acceptedCases) {
    const id = `${newCheckoutId('look')}-${value}`
    if (!safeIdPattern.test(id)) continue
    t.equal((await createPayment(stack.publicUrl, key, id)).status, 202, `header id with ${label} is accepted`)
  }
})

t.test('checkout id in the path of GET /payments/{id}', async (t) => {
  for (const shape of shapes) {
    const res = await call(`${stack.publicUrl}/payments/${encodeURIComponent(shape.value)}`, { headers: auth })
    if (shape.value.includes('/')) {
      // nginx reads the decoded path: /payments/4111/1111/… names no payment, so it has no key.
      t.equal(res.status, 400, `path ${shape.label}: 400`)
      t.equal(res.body?.code, 'checkout_id_missing', `path ${shape.label}: no routing key`)
    } else {
      assertCardRefused(t, res, `path ${shape.label}`)
    }
  }
  const id = newCheckoutId('look')
  t.equal((await createPayment(stack.publicUrl, key, `${id}-9780306406157`)).status, 202)
  t.equal((await getPayment(stack.publicUrl, key, `${id}-9780306406157`)).status, 200, 'a long non-card digit run reads back')
})

t.test('signed webhooks: refused with a card number in the body or the path, nothing recorded', async (t) => {
  // Parked at requires_action by the processor, so nothing else changes its version meanwhile.
  const { id } = await createSettledForAction('pan-hook')
  const before = await getPayment(stack.publicUrl, key, id)
  t.equal(before.status, 200)
  const post = (path: string, body: string): Promise<ApiResponse> => call(`${stack.publicUrl}/webhooks/psp/sandbox/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'ringpay-signature': signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), body) },
    body,
  })
  const event = (eventId: string, extra: string): string => `{"id":"${eventId}","object":"event","type":"charge.pending",` +
    `"created":${Math.floor(Date.now() / 1000)},"data":{"object":{"id":"ch_pan","object":"charge","status":"pending",` +
    `"amount":1999,"currency":"EUR","reference":"${id}","merchant_id":"merchant_demo"${extra}}}}`
  const eventId = `evt_${newCheckoutId('pan').replace(/-/g, '_')}`
  for (const shape of shapes) {
    const json = shape.json ?? JSON.stringify(shape.value)
    assertCardRefused(t, await post(id, event(eventId, `,"failure_message":${json}`)), `webhook body ${shape.label}`)
    assertCardRefused(t, await post(id, event(eventId, `,${json}:"x"`)), `webhook body key ${shape.label}`)
  }
  assertCardRefused(t, await post(id, event(eventId, `,"card_number":${pan}`)), 'webhook body, a number literal')
  for (const shape of shapes.filter((s) => !s.value.includes('/'))) {
    assertCardRefused(t, await post(encodeURIComponent(shape.value), event(eventId, '')), `webhook path ${shape.label}`)
  }
  const after = await getPayment(stack.publicUrl, key, id)
  t.equal(after.body?.version, before.body?.version, 'the payment did not change')
  // The same PSP event id, now clean, is new to the node: none of the refused ones was recorded.
  const clean = await post(id, event(eventId, ',"failure_message":"ref 9780306406157"'))
  t.equal(clean.status, 200, clean.text)
  t.equal(clean.body?.duplicate, false, 'the event id was never recorded')
  for (const { label, value } of acceptedCases) {
    const res = await post(id, event(`evt_${newCheckoutId('look').replace(/-/g, '_')}`, `,"failure_message":${JSON.stringify(value)}`))
    t.equal(res.status, 200, `webhook with ${label}: ${res.text.slice(0, 200)}`)
  }
})

/** Lines of `text` where the PAN's first 12 digits appear, read as the guard reads them. */
function leaks (text: string): string[] {
  const digits = pan.slice(0, 12).split('')
  // Any digit form (NFKC, Arabic-Indic, Devanagari), joined by anything but letters and digits
  // (JSON escapes such as \n included): a superset of the shapes sent.
  const digitClass = (d: string): string => `[${d}${String.fromCharCode(0x0660 + Number(d))}${String.fromCharCode(0x0966 + Number(d))}]`
  const pattern = new RegExp(digits.map(digitClass).join('(?:[^0-9A-Za-z]|\\\\[ntr]){0,8}'))
  return text.split('\n').filter((line) => pattern.test(line.normalize('NFKC')))
}

t.test('no log holds the card numbers sent: the nodes\' logs and nginx\'s access log', async (t) => {
  const files = [...stack.nodes.map((node) => node.logFile), stack.nginx.accessLog]
  // nginx writes a line after its answer: wait until the last refused request's line is there.
  await eventually(async () => readFileSync(stack.nginx.accessLog, 'utf8').includes('/webhooks/psp/sandbox/[masked]') ? true : undefined,
    logDeadlineMs, 'the access log lines of the refused webhooks')
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    t.ok(text.length > 0, `${file} is not empty`)
    t.same(leaks(text).map((line) => line.slice(0, 300)), [], `${file} holds no form of ${pan.slice(0, 4)}…`)
  }
  const access = readFileSync(stack.nginx.accessLog, 'utf8')
  t.ok(access.includes(`"uri":"/payments/[masked]"`), 'the access log keeps masked lines of refused requests')
})
