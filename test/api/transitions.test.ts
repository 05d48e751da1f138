// The node's state machine through nginx's internal listener: version-checked, forward only.
// Payments here stop at requires_action (the processor takes them that far), so the test is the
// only one moving them. The test acts as an operator (the `ops` token) and, for a success, as the
// processor (only that service may record one); who may do what is test/api/internal-auth.test.ts.

import t from 'tap'
import { call, getInternal, internalPaymentPath, newCheckoutId, transition } from '../helpers/api.ts'
import { freshPan } from '../helpers/card-number-corpus.ts'
import { closeDb, createSettledForAction, db, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const asProcessor = stack.internalTokens.processor
const settleDeadlineMs = 30_000
t.teardown(closeDb)

t.test('requires_action → processing → succeeded, each bumping the version', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  const processing = await transition(stack.internalUrl, id, { to: 'processing', expected_version: version, actor: 'test' })
  t.equal(processing.status, 200)
  t.match(processing.body, { applied: true, payment: { status: 'processing', version: version + 1 } })
  const succeeded = await transition(stack.internalUrl, id,
    { to: 'succeeded', expected_version: version + 1, actor: 'test', psp_reference: 'ch_123' }, asProcessor)
  t.match(succeeded.body, { applied: true, payment: { status: 'succeeded', version: version + 2, psp_reference: 'ch_123' } })
})

t.test('a repeated transition is a no-op, not an error', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  await transition(stack.internalUrl, id, { to: 'canceled', expected_version: version, actor: 'test' })
  const again = await transition(stack.internalUrl, id, { to: 'canceled', expected_version: version, actor: 'test' })
  t.equal(again.status, 200)
  t.match(again.body, { applied: false, payment: { status: 'canceled', version: version + 1 } })
})

t.test('a stale version changes nothing and says why', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  await transition(stack.internalUrl, id, { to: 'processing', expected_version: version, actor: 'test' })
  const stale = await transition(stack.internalUrl, id, { to: 'failed', expected_version: version, actor: 'webhook:sandbox' })
  t.equal(stale.status, 409)
  t.match(stale.body, { code: 'stale_version', current_status: 'processing', current_version: version + 1 })
})

t.test('a terminal payment never moves again', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  await transition(stack.internalUrl, id, { to: 'failed', expected_version: version, actor: 'test', failure_code: 'card_declined' })
  for (const to of ['processing', 'canceled']) {
    const res = await transition(stack.internalUrl, id, { to, expected_version: version + 1, actor: 'late-event' })
    t.equal(res.status, 409, to)
    t.equal(res.body.code, 'invalid_transition', to)
  }
  const late = await transition(stack.internalUrl, id, { to: 'succeeded', expected_version: version + 1, psp_reference: 'ch_late' }, asProcessor)
  t.match(late.body, { status: 409, code: 'invalid_transition' }, 'succeeded')
  // Back to pending is no service's job: refused before the state machine is asked.
  for (const token of Object.values(stack.internalTokens)) {
    t.match((await transition(stack.internalUrl, id, { to: 'pending', expected_version: version + 1 }, token)).body,
      { status: 403, code: 'internal_forbidden' }, 'pending')
  }
  t.match((await getInternal(stack.internalUrl, id)).body, { status: 'failed', version: version + 1 })
})

t.test('transition input is validated', async (t) => {
  const { id } = await createSettledForAction('tr')
  const res = await transition(stack.internalUrl, id, { to: 'paid', expected_version: 0, extra: 1 })
  t.equal(res.status, 400)
  t.equal(res.body.code, 'validation_failed')
  t.same(res.body.errors.map((e: { field: string }) => e.field).sort(), ['expected_version', 'extra', 'to'])
  const badActor = await transition(stack.internalUrl, id, { to: 'canceled', expected_version: 1, actor: 'a'.repeat(65) })
  t.same(badActor.body.errors?.map((e: { field: string }) => e.field), ['actor'], 'an actor detail is bounded')
})

t.test('a claim written unpublished guards the payment; Postgres sees only the outcome', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  const refused = await transition(stack.internalUrl, id, { to: 'succeeded', expected_version: version, actor: 'test', psp_reference: 'ch_claim', publish: false }, asProcessor)
  t.equal(refused.status, 400, 'only a move to processing may stay unpublished')
  t.same(refused.body.errors?.map((e: { field: string }) => e.field), ['publish'])
  const claim = await transition(stack.internalUrl, id, { to: 'processing', expected_version: version, actor: 'test-claim', publish: false })
  t.match(claim.body, { applied: true, payment: { status: 'processing', version: version + 1 } })
  const stale = await transition(stack.internalUrl, id, { to: 'failed', expected_version: version, actor: 'test' })
  t.match(stale.body, { code: 'stale_version', current_version: version + 1 }, 'the claim is in force')
  await transition(stack.internalUrl, id, { to: 'succeeded', expected_version: version + 1, actor: 'test', psp_reference: 'ch_claim' }, asProcessor)
  const row = await postgresReaches(id, version + 2, settleDeadlineMs)
  t.match(row, { status: 'succeeded' })
  const { rows } = await db().query('SELECT status, version, actor FROM payment_events WHERE checkout_id = $1 ORDER BY version', [id])
  t.notOk(rows.some((r) => r.status === 'processing'), 'the claim is not an event in Postgres')
  t.match(rows.at(-1), { actor: 'processor:test' }, 'the outcome is recorded as the processor\'s')
  t.match(rows.at(-1), { status: 'succeeded', version: String(version + 2) })
})

t.test('the node refuses internal calls without a known service token', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  const node = stack.nodes[0]!
  const res = await call(`http://127.0.0.1:${node.adminPort}${internalPaymentPath(id)}/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-ringpay-internal-token': 'wrong-token-wrong-token' },
    body: JSON.stringify({ to: 'processing', expected_version: version, actor: 'x' }),
  })
  t.equal(res.status, 401)
  t.equal(res.body.code, 'internal_unauthorized')
})

t.test('unknown payment', async (t) => {
  const res = await transition(stack.internalUrl, newCheckoutId('tr'), { to: 'processing', expected_version: 1, actor: 'processor' })
  t.equal(res.status, 404)
  t.equal(res.body.code, 'payment_not_found')
})

t.test('a card number in a PSP\'s failure text is stored masked, and the transition still applies', async (t) => {
  const { id, version } = await createSettledForAction('tr')
  const pan = freshPan()
  const res = await transition(stack.internalUrl, id, {
    to: 'failed', expected_version: version, actor: 'processor', failure_code: 'card_declined',
    failure_message: `Declined: card ${pan.slice(0, 4)} ${pan.slice(4, 8)} ${pan.slice(8, 12)} ${pan.slice(12)} is blocked`,
  })
  t.equal(res.status, 200)
  const stored = (await getInternal(stack.internalUrl, id)).body
  t.equal(stored.status, 'failed')
  t.notOk(stored.failure_message.replace(/\D/g, '').includes(pan), 'the number is not stored')
  t.ok(stored.failure_message.endsWith(`${pan.slice(12)} is blocked`), `the rest of the text is kept: ${stored.failure_message}`)
})
