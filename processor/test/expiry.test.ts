// The watchdog's expiry decisions (processor/expiry.ts) against a scripted node and PSP: what is
// old enough is canceled at the PSP and then on its node; what the PSP did charge is applied
// instead; what is young is left alone. The same against the real stack: test/api/expiry.test.ts.

import t from 'tap'
import { createLogger } from '../../lib/log.ts'
import type { ChargeFlowDeps } from '../charge-flow.ts'
import { paymentAgeMs } from '../expiry.ts'
import { createProcessorMetrics } from '../metrics.ts'
import type { NodeClient, NodePayment, TransitionCall } from '../node-client.ts'
import type { ChargeOutcome } from '../psp/types.ts'
import { Semaphore } from '../semaphore.ts'
import { watchdogRound } from '../watchdog.ts'

const nowMs = Date.parse('2026-12-07T12:00:00.000Z')
const hourMs = 3_600_000
const options = { staleAfterMs: 30_000, batchMax: 10, actionExpiryMs: 24 * hourMs, pendingExpiryMs: 24 * hourMs, captureExpiryMs: 7 * 24 * hourMs }

function payment (status: NodePayment['status'], ageMs: number): NodePayment {
  return {
    checkout_id: 'co_exp', merchant_id: 'm', status, version: 3, amount: 100, currency: 'EUR', payment_method: 'pm_card_visa',
    description: '', created_at: new Date(nowMs - ageMs).toISOString(),
    ...(status === 'requires_action' || status === 'requires_capture' ? { psp_reference: 'ch_1' } : {}),
    ...(status === 'requires_capture' ? { capture_method: 'manual' as const, amount_to_capture: 0, amount_captured: 0 } : {}),
  }
}

/** One stale payment in Postgres; the node holds `current`; the PSP answers as told. */
function world (current: NodePayment, psp: { found: ChargeOutcome | undefined, cancel: 'canceled' | 'not_cancelable', capture?: 'captured' | 'not_capturable' }) {
  const transitions: TransitionCall[] = []
  const pspCalls: string[] = []
  const node = {
    async get () { return current },
    async transition (_id: string, call: TransitionCall) {
      transitions.push(call)
      return { applied: true, payment: { ...current, status: call.to, version: current.version + 1 } }
    },
  } as unknown as NodeClient
  const pspClient = {
    async findCharge () { pspCalls.push('find'); return psp.found },
    async capture (request: { amount: number }) {
      pspCalls.push('capture')
      const outcome = psp.capture === 'not_capturable' ? { kind: 'not_capturable', detail: 'canceled' } : { kind: 'captured', pspReference: 'ch_1', amountCaptured: request.amount }
      return { outcome, httpStatus: 200, responseBody: {}, latencyMs: 1 }
    },
    async cancelCharge () {
      pspCalls.push('cancel')
      return { outcome: psp.cancel === 'canceled' ? { kind: 'canceled' } : { kind: 'not_cancelable', detail: 'completed' }, httpStatus: 200, responseBody: {}, latencyMs: 1 }
    },
  }
  const flow = {
    node, psp: pspClient, pspSlots: new Semaphore(2), log: createLogger('expiry-test', {}),
    attempts: { record: async () => {} }, flag: async () => {},
  } as unknown as ChargeFlowDeps
  const pool = {
    async query (sql: string) {
      if (sql.includes('min(created_at)')) return { rows: [{ age_s: 0 }], rowCount: 1 }
      if (sql.includes('FROM payments')) return { rows: [{ checkout_id: current.checkout_id }], rowCount: 1 }
      return { rows: [], rowCount: 0 }
    },
  }
  const metrics = createProcessorMetrics('p-test', { pspInFlight: () => 0, paymentsInFlight: () => 0 })
  const round = (): Promise<number> => watchdogRound(pool as never, flow, metrics, flow.log, options, () => nowMs)
  return { transitions, pspCalls, round }
}

t.test('the age comes from the node\'s created_at', async (t) => {
  t.equal(paymentAgeMs(payment('pending', 5 * hourMs), nowMs), 5 * hourMs)
  t.equal(paymentAgeMs({ ...payment('pending', 0), created_at: undefined }, nowMs), 0, 'unknown: never old enough')
})

t.test('requires_action younger than its expiry: left for the customer', async (t) => {
  const w = world(payment('requires_action', 23 * hourMs), { found: undefined, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, [])
  t.same(w.transitions, [])
})

t.test('requires_action past its expiry: canceled at the PSP, then on its node', async (t) => {
  const w = world(payment('requires_action', 25 * hourMs), { found: undefined, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['cancel'], 'the PSP first: the customer can no longer complete it')
  t.match(w.transitions, [{ to: 'canceled', expectedVersion: 3, failureCode: 'expired' }])
})

t.test('requires_action past its expiry that the customer completed: the charge wins', async (t) => {
  const w = world(payment('requires_action', 25 * hourMs), { found: { kind: 'succeeded', pspReference: 'ch_1' }, cancel: 'not_cancelable' })
  await w.round()
  t.same(w.pspCalls, ['cancel', 'find'])
  t.match(w.transitions, [{ to: 'succeeded', pspReference: 'ch_1' }])
})

t.test('pending past its expiry with no charge at the PSP: canceled, never charged', async (t) => {
  const w = world(payment('pending', 25 * hourMs), { found: undefined, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['find'], 'looked up, not charged')
  t.match(w.transitions, [{ to: 'canceled', expectedVersion: 3, failureCode: 'expired' }])
})

t.test('pending past its expiry that the PSP did charge: the charge is applied', async (t) => {
  const w = world(payment('pending', 25 * hourMs), { found: { kind: 'succeeded', pspReference: 'ch_9' }, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['find'])
  t.match(w.transitions, [{ to: 'succeeded', pspReference: 'ch_9' }])
})

// Manual capture (issue #14): the backstop for the PSP's own void of an authorization left uncaptured.

t.test('requires_capture within its window: left for the merchant, no PSP call', async (t) => {
  const w = world(payment('requires_capture', 7 * 24 * hourMs - hourMs), { found: { kind: 'requires_capture', pspReference: 'ch_1' }, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, [])
  t.same(w.transitions, [])
})

t.test('requires_capture past its window, still authorized at the PSP (its void webhook lost): voided there, then canceled', async (t) => {
  const w = world(payment('requires_capture', 8 * 24 * hourMs), { found: { kind: 'requires_capture', pspReference: 'ch_1' }, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['find', 'cancel'])
  t.match(w.transitions, [{ to: 'canceled', expectedVersion: 3, failureCode: 'authorization_expired' }])
})

t.test('requires_capture past its window that the PSP voided: its cancel is applied', async (t) => {
  const found = { kind: 'canceled' as const, pspReference: 'ch_1', failureCode: 'authorization_expired', failureMessage: 'voided' }
  const w = world(payment('requires_capture', 8 * 24 * hourMs), { found, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['find'])
  t.match(w.transitions, [{ to: 'canceled', failureCode: 'authorization_expired', pspReference: 'ch_1' }])
})

t.test('requires_capture with its capture asked for and stuck: the capture is re-driven under the same key, whatever its age', async (t) => {
  const w = world({ ...payment('requires_capture', 60_000), amount_to_capture: 70 }, { found: undefined, cancel: 'canceled' })
  await w.round()
  t.same(w.pspCalls, ['capture'])
  t.match(w.transitions, [{ to: 'succeeded', pspReference: 'ch_1' }])
})

t.test('a capture the PSP refuses because the authorization expired just before: the void is applied, nothing captured', async (t) => {
  const found = { kind: 'canceled' as const, pspReference: 'ch_1', failureCode: 'authorization_expired', failureMessage: 'voided' }
  const w = world({ ...payment('requires_capture', 60_000), amount_to_capture: 70 }, { found, cancel: 'canceled', capture: 'not_capturable' })
  await w.round()
  t.same(w.pspCalls, ['capture', 'find'])
  t.match(w.transitions, [{ to: 'canceled', failureCode: 'authorization_expired' }])
})
