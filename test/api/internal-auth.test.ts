// The internal API no longer trusts the network (#17 part 2, SECURITY.md): nginx's internal
// listener adds no credential, so a caller without its own service token gets 401 there and on
// every node port; a transition is recorded as the service its token names, whatever the body
// says; a success needs the PSP reference of a charge; a service asking for what is not its job
// gets 403. Before, nginx added the one shared token to every request it received.

import t, { type Test } from 'tap'
import { internalTokenHeader, newInternalToken } from '../../lib/internal-credentials.ts'
import { call, getInternal, internalPaymentPath, testMerchantId, transition, unixSocketBaseUrl, type ApiResponse } from '../helpers/api.ts'
import { closeDb, createSettledForAction, db, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const tokens = stack.internalTokens
const settleDeadlineMs = 30_000
t.teardown(closeDb)

type Credential = Record<string, string>
const credentials: Array<[string, Credential]> = [
  ['no credential', {}],
  ['an empty one', { [internalTokenHeader]: '' }],
  ['an unknown token', { [internalTokenHeader]: newInternalToken() }],
  ['the processor token with a character dropped', { [internalTokenHeader]: tokens.processor.slice(1) }],
  ['the control token', { [internalTokenHeader]: stack.controlToken }],
  ['a merchant API key as a bearer', { authorization: `Bearer ${stack.apiKeys.merchant_demo}` }],
]

/** Every kind of internal call for one payment, at `origin`, with `headers`. */
function internalCalls (origin: string, id: string, version: number, headers: Credential): Array<[string, () => Promise<ApiResponse>]> {
  const json = { 'content-type': 'application/json', 'x-payment-checkout-id': id, ...headers }
  return [
    ['GET /internal/payments/:merchant_id/:id', () => call(`${origin}${internalPaymentPath(id)}`, { headers: { 'x-payment-checkout-id': id, ...headers } })],
    ['POST /internal/payments/:merchant_id/:id/transitions', () => call(`${origin}${internalPaymentPath(id)}/transitions`, {
      method: 'POST', headers: json, body: JSON.stringify({ to: 'succeeded', expected_version: version, actor: 'processor', psp_reference: 'ch_forged' }),
    })],
    ['POST /internal/transitions', () => call(`${origin}/internal/transitions`, {
      method: 'POST', headers: json, body: JSON.stringify({ transitions: [{ merchant_id: testMerchantId, checkout_id: id, to: 'canceled', expected_version: version }] }),
    })],
  ]
}

async function unchanged (t: Test, id: string, version: number, what: string): Promise<void> {
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'requires_action', version }, `${what}: the payment did not move`)
}

t.test('nginx\'s internal listener adds no credential: without a known service token every call is 401', async (t) => {
  const { id, version } = await createSettledForAction('ia')
  for (const [who, headers] of credentials) {
    for (const [route, send] of internalCalls(stack.internalUrl, id, version, headers)) {
      const res = await send()
      const what = `${route} through nginx with ${who}`
      t.equal(res.status, 401, `${what}: ${res.text.slice(0, 200)}`)
      t.match(String(res.headers['content-type']), /^application\/problem\+json/, what)
      t.equal(res.body?.code, 'internal_unauthorized', what)
      t.notMatch(res.text, /merchant_demo|1999/, `${what}: nothing of the payment shown`)
    }
  }
  await unchanged(t, id, version, 'after every refused call')
})

t.test('the same on every node\'s ports, which nginx does not front', async (t) => {
  const { id, version } = await createSettledForAction('ia')
  for (const node of stack.nodes) {
    for (const origin of [unixSocketBaseUrl(node.publicSocket), `http://127.0.0.1:${node.adminPort}`]) {
      for (const [route, send] of internalCalls(origin, id, version, {})) {
        const res = await send()
        t.match({ status: res.status, code: res.body?.code }, { status: 401, code: 'internal_unauthorized' }, `${route} on ${origin}`)
      }
    }
  }
  await unchanged(t, id, version, 'after the direct calls')
})

t.test('a forged actor is recorded as the service the token names', async (t) => {
  const { id, version } = await createSettledForAction('ia')
  // The processor took it this far through nginx with its own token (or the PSP's webhook beat it
  // there): recorded as the processor service, whatever actor its body named.
  await postgresReaches(id, version, settleDeadlineMs)
  const before = await db().query('SELECT actor FROM payment_events WHERE checkout_id = $1 AND status = $2', [id, 'requires_action'])
  t.match(before.rows.map((r) => r.actor), [/^(processor|webhook:sandbox)$/], 'the processor\'s own transition')
  const res = await transition(stack.internalUrl, id, { to: 'canceled', expected_version: version, actor: 'processor' }, tokens.ops)
  t.match(res.body, { applied: true, payment: { status: 'canceled', version: version + 1 } })
  await postgresReaches(id, version + 1, settleDeadlineMs)
  const { rows } = await db().query('SELECT actor FROM payment_events WHERE checkout_id = $1 AND version = $2', [id, version + 1])
  t.same(rows.map((r) => r.actor), ['ops:processor'], 'an operator claiming to be the processor is recorded as ops')

  const other = await createSettledForAction('ia')
  await transition(stack.internalUrl, other.id, { to: 'failed', expected_version: other.version, actor: 'webhook:sandbox', failure_code: 'x' }, tokens.ops)
  await postgresReaches(other.id, other.version + 1, settleDeadlineMs)
  const forged = await db().query('SELECT actor FROM payment_events WHERE checkout_id = $1 AND version = $2', [other.id, other.version + 1])
  t.same(forged.rows.map((r) => r.actor), ['ops:webhook:sandbox'], 'nor can it pass for a verified PSP webhook')
})

t.test('a success needs the PSP reference of a charge, even from the processor', async (t) => {
  const { id, version } = await createSettledForAction('ia')
  t.equal((await transition(stack.internalUrl, id, { to: 'processing', expected_version: version }, tokens.processor)).status, 200)
  for (const [what, reference] of [['none', undefined], ['empty', ''], ['blank', '   ']] as const) {
    const body = { to: 'succeeded', expected_version: version + 1, ...(reference === undefined ? {} : { psp_reference: reference }) }
    const res = await transition(stack.internalUrl, id, body, tokens.processor)
    t.equal(res.status, 400, what)
    t.equal(res.body.code, 'validation_failed', what)
    t.same(res.body.errors?.map((e: { field: string }) => e.field), ['psp_reference'], what)
  }
  const batch = await call(`${stack.internalUrl}/internal/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-payment-checkout-id': id, [internalTokenHeader]: tokens.processor },
    body: JSON.stringify({ transitions: [{ checkout_id: id, to: 'succeeded', expected_version: version + 1 }] }),
  })
  t.match({ status: batch.status, code: batch.body?.code }, { status: 400, code: 'validation_failed' }, 'batched too')
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'processing', version: version + 1 }, 'still processing')
  const ok = await transition(stack.internalUrl, id, { to: 'succeeded', expected_version: version + 1, psp_reference: 'ch_real' }, tokens.processor)
  t.match(ok.body, { applied: true, payment: { status: 'succeeded', psp_reference: 'ch_real' } })
})

t.test('a service asking for what is not its job gets 403 and changes nothing', async (t) => {
  const { id, version } = await createSettledForAction('ia')
  const forbidden = { status: 403, code: 'internal_forbidden' }
  const succeed = { to: 'succeeded', expected_version: version, psp_reference: 'ch_forged' }
  t.match((await transition(stack.internalUrl, id, succeed, tokens.ops)).body, forbidden, 'ops may not record a success')
  t.match((await transition(stack.internalUrl, id, succeed, tokens.audit)).body, forbidden, 'audit may not record a success')
  t.match((await transition(stack.internalUrl, id, { to: 'canceled', expected_version: version }, tokens.audit)).body, forbidden, 'audit only reads')
  t.equal((await getInternal(stack.internalUrl, id, tokens.audit)).status, 200, 'audit reads')
  // One item a service may not apply refuses the whole batch, before anything is applied.
  const batch = await call(`${stack.internalUrl}/internal/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-payment-checkout-id': id, [internalTokenHeader]: tokens.ops },
    body: JSON.stringify({ transitions: [{ merchant_id: testMerchantId, checkout_id: id, to: 'failed', expected_version: version },
      { merchant_id: testMerchantId, checkout_id: id, ...succeed }] }),
  })
  t.match({ status: batch.status, code: batch.body?.code }, forbidden, 'a batch with one forbidden item')
  await unchanged(t, id, version, 'after the forbidden calls')
})
