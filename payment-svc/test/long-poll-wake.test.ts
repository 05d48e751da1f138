// Which changes wake a long-poll: any change at once, except a move to `processing` (the
// processor's claim before it charges), which wakes it only if it lasts processingWakeDelayMs,
// with the payment as it is by then.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { defaultLimits } from '../limits.ts'
import { PaymentService, type TransitionRequest } from '../payment-service.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { PaymentStore } from '../store.ts'

const processingWakeDelayMs = 300
const request = { amount: 1999, currency: 'EUR', paymentMethod: 'pm_card_visa', description: '', customerRef: '', metadata: {} }

async function openService (t: { teardown: (fn: () => unknown) => void }, delayMs = processingWakeDelayMs): Promise<PaymentService> {
  const store = new PaymentStore(join(mkdtempSync(join(tmpdir(), 'ringpay-wake-')), 'db'), { sealer: testKeyRing })
  await store.open('n1', Date.now())
  t.teardown(() => store.close())
  return new PaymentService('n1', store, { ...defaultLimits, processingWakeDelayMs: delayMs }, { onWriteFailure: (error) => { throw error } })
}

function to (status: TransitionRequest['to'], expectedVersion: number, pspReference = ''): TransitionRequest {
  return { to: status, expectedVersion, actor: 'test', failureCode: '', failureMessage: '', pspReference }
}

/** A long-poll on `id` after version 1, with when it returned. */
function poll (service: PaymentService, id: string): Promise<{ status: string, version: number, afterMs: number }> {
  const startedAt = performance.now()
  return service.waitForChange('m', id, 1, 10_000, () => {})
    .then((p) => ({ status: p.status, version: p.version, afterMs: performance.now() - startedAt }))
}

t.test('processing then the outcome: one wake-up, with the outcome', async (t) => {
  const service = await openService(t)
  await service.create('m', 'co_a', request, Date.now())
  const waiting = poll(service, 'co_a')
  await service.transition('m', 'co_a', to('processing', 1), Date.now())
  await new Promise((resolve) => setTimeout(resolve, processingWakeDelayMs / 3))
  await service.transition('m', 'co_a', to('succeeded', 2, 'ch_1'), Date.now())
  const woke = await waiting
  t.match(woke, { status: 'succeeded', version: 3 }, 'the outcome, not the claim before it')
  t.ok(woke.afterMs < processingWakeDelayMs, `woke at the outcome (${Math.round(woke.afterMs)} ms)`)
})

t.test('processing that lasts wakes the poll after the delay, as it is by then', async (t) => {
  const service = await openService(t)
  await service.create('m', 'co_b', request, Date.now())
  const waiting = poll(service, 'co_b')
  await service.transition('m', 'co_b', to('processing', 1), Date.now())
  const woke = await waiting
  t.match(woke, { status: 'processing', version: 2 })
  t.ok(woke.afterMs >= processingWakeDelayMs - 5, `not before the delay (${Math.round(woke.afterMs)} ms)`)
  t.ok(woke.afterMs < processingWakeDelayMs + 2_000, 'but soon after it')
})

t.test('any other change wakes at once; with the delay off, processing does too', async (t) => {
  const service = await openService(t)
  await service.create('m', 'co_c', request, Date.now())
  const waiting = poll(service, 'co_c')
  await service.transition('m', 'co_c', to('requires_action', 1, 'ch_2'), Date.now())
  const woke = await waiting
  t.match(woke, { status: 'requires_action', version: 2 })
  t.ok(woke.afterMs < processingWakeDelayMs, 'at once')

  const immediate = await openService(t, 0)
  await immediate.create('m', 'co_d', request, Date.now())
  const waitingD = poll(immediate, 'co_d')
  await immediate.transition('m', 'co_d', to('processing', 1), Date.now())
  const wokeD = await waitingD
  t.match(wokeD, { status: 'processing', version: 2 })
  t.ok(wokeD.afterMs < processingWakeDelayMs, 'processingWakeDelayMs 0: at once')
})
