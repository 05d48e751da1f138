import t from 'tap'
import { cancelOutcomeOfSandboxResponse, captureOutcomeOfSandboxResponse, outcomeOfSandboxCharge, outcomeOfSandboxResponse, refundOutcomeOfSandboxResponse, toSandboxChargeBody } from '../psp/sandbox.ts'
import { captureIdempotencyKey, chargeIdempotencyKey, PspError, refundIdempotencyKey, type ChargeRequest } from '../psp/types.ts'

const request: ChargeRequest = {
  checkoutId: 'co_1', merchantId: 'm', amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '',
}
const charge = { id: 'ch_1', status: 'succeeded', amount: 1999, currency: 'EUR', reference: 'co_1' }

t.test('statuses map to outcomes', (t) => {
  t.same(outcomeOfSandboxResponse(201, charge, undefined, request), { kind: 'succeeded', pspReference: 'ch_1' })
  t.same(outcomeOfSandboxResponse(200, { ...charge, status: 'failed', failure_code: 'card_declined' }, undefined, request),
    { kind: 'failed', pspReference: 'ch_1', failureCode: 'card_declined', failureMessage: '' })
  t.equal(outcomeOfSandboxResponse(201, { ...charge, status: 'pending' }, undefined, request).kind, 'pending')
  t.equal(outcomeOfSandboxResponse(201, { ...charge, status: 'requires_action' }, undefined, request).kind, 'requires_action')
  t.end()
})

t.test('an unknown status is never success', (t) => {
  const outcome = outcomeOfSandboxResponse(201, { ...charge, status: 'captured_maybe' }, undefined, request)
  t.equal(outcome.kind, 'flagged')
  t.end()
})

t.test('a charge for another amount, currency or reference is flagged', (t) => {
  t.equal(outcomeOfSandboxResponse(201, { ...charge, amount: 2000 }, undefined, request).kind, 'flagged')
  t.equal(outcomeOfSandboxResponse(201, { ...charge, currency: 'USD' }, undefined, request).kind, 'flagged')
  t.equal(outcomeOfSandboxResponse(201, { ...charge, reference: 'co_2' }, undefined, request).kind, 'flagged')
  t.end()
})

t.test('errors say whether to retry, decided where they are made', (t) => {
  const cases: Array<[number, unknown, string, boolean]> = [
    [500, { error: { code: 'internal' } }, 'psp_unavailable', true],
    [503, undefined, 'psp_unavailable', true],
    [429, {}, 'psp_rate_limited', true],
    [409, { error: { code: 'idempotency_key_in_use' } }, 'psp_in_progress', true],
    [422, { error: { code: 'idempotency_key_mismatch' } }, 'psp_idempotency_mismatch', false],
    [401, {}, 'psp_auth', false],
    [400, { error: { code: 'invalid_payment_method' } }, 'psp_rejected', false],
  ]
  for (const [status, body, code, retriable] of cases) {
    const error = (() => { try { outcomeOfSandboxResponse(status, body, '2', request) } catch (e) { return e } })()
    t.ok(error instanceof PspError, `${status} throws`)
    t.equal((error as PspError).code, code, `${status} → ${code}`)
    t.equal((error as PspError).retriable, retriable, `${status} retriable=${retriable}`)
  }
  const limited = (() => { try { outcomeOfSandboxResponse(429, {}, '2', request) } catch (e) { return e as PspError } })()
  t.equal(limited?.retryAfterMs, 2000)
  t.end()
})

t.test('cancel answers map to outcomes or typed errors', (t) => {
  const canceled = { ...charge, status: 'canceled' }
  t.same(cancelOutcomeOfSandboxResponse(200, canceled, undefined, 'ch_1'), { kind: 'canceled' })
  t.same(cancelOutcomeOfSandboxResponse(400, { error: { code: 'charge_not_cancelable', message: 'This charge is succeeded' } }, undefined, 'ch_1'),
    { kind: 'not_cancelable', detail: 'This charge is succeeded' })
  t.throws(() => cancelOutcomeOfSandboxResponse(200, { ...canceled, id: 'ch_2' }, undefined, 'ch_1'), { code: 'psp_bad_response' }, 'another charge')
  t.throws(() => cancelOutcomeOfSandboxResponse(200, charge, undefined, 'ch_1'), { code: 'psp_bad_response' }, 'a 200 that is not canceled')
  t.throws(() => cancelOutcomeOfSandboxResponse(503, {}, undefined, 'ch_1'), { code: 'psp_unavailable', retriable: true })
  t.throws(() => cancelOutcomeOfSandboxResponse(409, { error: { code: 'idempotency_key_in_use' } }, undefined, 'ch_1'), { code: 'psp_in_progress', retriable: true })
  t.throws(() => cancelOutcomeOfSandboxResponse(404, { error: { code: 'resource_missing' } }, undefined, 'ch_1'), { code: 'psp_rejected', retriable: false })
  t.throws(() => cancelOutcomeOfSandboxResponse(400, { error: { code: 'parameter_invalid' } }, undefined, 'ch_1'), PspError)
  t.end()
})

t.test('refund answers map to outcomes; anything that disagrees is flagged, a refusal is not retried', (t) => {
  const refundRequest = { refundId: 're_1', merchantId: 'm', checkoutId: 'co_1', chargeReference: 'ch_1', amount: 500, currency: 'EUR' }
  const refund = { id: 're_psp', object: 'refund', status: 'succeeded', amount: 500, currency: 'EUR', charge: 'ch_1', reference: 're_1' }
  t.same(refundOutcomeOfSandboxResponse(201, refund, undefined, refundRequest), { kind: 'succeeded', pspReference: 're_psp' })
  t.same(refundOutcomeOfSandboxResponse(201, { ...refund, status: 'failed', failure_code: 'expired_or_canceled_card' }, undefined, refundRequest),
    { kind: 'failed', pspReference: 're_psp', failureCode: 'expired_or_canceled_card', failureMessage: '' })
  t.equal(refundOutcomeOfSandboxResponse(200, { ...refund, status: 'pending' }, undefined, refundRequest).kind, 'pending')
  for (const other of [{ amount: 501 }, { currency: 'USD' }, { reference: 're_2' }, { charge: 'ch_2' }, { status: 'reversed' }]) {
    t.equal(refundOutcomeOfSandboxResponse(201, { ...refund, ...other }, undefined, refundRequest).kind, 'flagged', JSON.stringify(other))
  }
  t.throws(() => refundOutcomeOfSandboxResponse(400, { error: { code: 'refund_amount_too_large' } }, undefined, refundRequest),
    { code: 'psp_rejected', retriable: false })
  t.throws(() => refundOutcomeOfSandboxResponse(503, {}, undefined, refundRequest), { code: 'psp_unavailable', retriable: true })
  t.equal(refundIdempotencyKey('re_1'), refundIdempotencyKey('re_1'), 'the key is a function of the refund id alone')
  t.not(refundIdempotencyKey('re_1'), 're_1')
  t.end()
})

// Manual capture (issue #14).

t.test('manual capture: an authorization, a capture and a void are mapped; a capture method we did not ask for is flagged', async (t) => {
  const manual = { checkoutId: 'co_m', merchantId: 'm', amount: 1000, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', manualCapture: true as const }
  const base = { id: 'ch_m', amount: 1000, currency: 'EUR', reference: 'co_m', capture_method: 'manual' }
  t.match(toSandboxChargeBody(manual), { capture: false })
  t.notOk('capture' in toSandboxChargeBody({ ...manual, manualCapture: undefined } as never), 'the usual body is unchanged')
  t.same(outcomeOfSandboxCharge({ ...base, status: 'requires_capture' }, manual), { kind: 'requires_capture', pspReference: 'ch_m' })
  t.same(outcomeOfSandboxCharge({ ...base, status: 'succeeded', amount_captured: 600 }, manual), { kind: 'succeeded', pspReference: 'ch_m', amountCaptured: 600 })
  t.match(outcomeOfSandboxCharge({ ...base, status: 'succeeded', amount_captured: 1001 }, manual), { kind: 'flagged' }, 'more than authorized')
  t.match(outcomeOfSandboxCharge({ ...base, status: 'canceled', failure_code: 'authorization_expired' }, manual), { kind: 'canceled', failureCode: 'authorization_expired' })
  t.match(outcomeOfSandboxCharge({ ...base, capture_method: undefined, status: 'succeeded' } as never, manual), { kind: 'flagged' }, 'captured at once though we asked to authorize')
  t.match(outcomeOfSandboxCharge({ ...base, status: 'requires_capture' }, { ...manual, manualCapture: undefined } as never), { kind: 'flagged' }, 'authorized though we asked to charge')

  const request = { merchantId: 'm', checkoutId: 'co_m', chargeReference: 'ch_m', amount: 600, currency: 'EUR' }
  t.same(captureOutcomeOfSandboxResponse(200, { ...base, status: 'succeeded', amount_captured: 600 }, undefined, request),
    { kind: 'captured', pspReference: 'ch_m', amountCaptured: 600 })
  t.throws(() => captureOutcomeOfSandboxResponse(200, { ...base, status: 'succeeded', amount_captured: 500 }, undefined, request), { code: 'psp_bad_response' })
  t.throws(() => captureOutcomeOfSandboxResponse(200, { ...base, id: 'ch_other', status: 'succeeded', amount_captured: 600 }, undefined, request), { code: 'psp_bad_response' })
  t.match(captureOutcomeOfSandboxResponse(400, { error: { code: 'charge_not_capturable', message: 'canceled' } }, undefined, request), { kind: 'not_capturable' })
  t.throws(() => captureOutcomeOfSandboxResponse(503, {}, undefined, request), { code: 'psp_unavailable', retriable: true })
  t.throws(() => captureOutcomeOfSandboxResponse(409, {}, undefined, request), { code: 'psp_in_progress', retriable: true })
  t.equal(captureIdempotencyKey('m', 'co_m'), 'capture/m/co_m')
})

// Checkout ids are per merchant (issue #17 part 5).

t.test('PSP idempotency keys: per merchant and checkout id, and never equal across kinds', (t) => {
  t.equal(chargeIdempotencyKey('m_a', 'co_1'), 'm_a/co_1')
  t.not(chargeIdempotencyKey('m_a', 'co_1'), chargeIdempotencyKey('m_b', 'co_1'), 'two merchants\' payments of one checkout id are two charges')
  t.not(captureIdempotencyKey('m_a', 'co_1'), captureIdempotencyKey('m_b', 'co_1'), 'and two captures')
  // Merchant and checkout ids are [A-Za-z0-9_-]: no charge key equals a capture or refund key.
  t.not(chargeIdempotencyKey('capture', 'm_a'), captureIdempotencyKey('m_a', 'co_1'))
  t.not(chargeIdempotencyKey('refund_re', '1'), refundIdempotencyKey('re_1'))
  t.equal(chargeIdempotencyKey('m_a', 'co_1').split('/').length, 2)
  t.equal(captureIdempotencyKey('m_a', 'co_1').split('/').length, 3)
  t.equal(refundIdempotencyKey('re_1').split('/').length, 1)
  t.end()
})

t.test('a charge of another merchant is never believed for this payment', (t) => {
  t.same(outcomeOfSandboxCharge({ ...charge, merchant_id: 'm' }, request), { kind: 'succeeded', pspReference: 'ch_1' })
  t.match(outcomeOfSandboxCharge({ ...charge, merchant_id: 'other' }, request), { kind: 'flagged' })
  t.end()
})
