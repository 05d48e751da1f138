// Failover between PSPs (issue #16), against a scripted node and scripted providers: a payment
// moves only when the first PSP provably did not charge it, the move is recorded (version-checked)
// before the first attempt at the next one, and a timeout alone never moves it.

import t from 'tap'
import type { PaymentId } from '../../lib/payment-id.ts'
import { createLogger } from '../../lib/log.ts'
import { drivePayment, provenUncharged, type ChargeFlowDeps } from '../charge-flow.ts'
import type { NodeClient, NodePayment, TransitionCall } from '../node-client.ts'
import { defaultBreakerLimits } from '../psp/breaker.ts'
import type { ChargeCall } from '../psp/psp-client.ts'
import type { PspProvider } from '../psp/provider.ts'
import { GuardedProvider, PspRegistry } from '../psp/registry.ts'
import { parseRoutingConfig } from '../psp/routing.ts'
import { PspError, type ChargeOutcome, type ChargeRequest } from '../psp/types.ts'
import { Semaphore } from '../semaphore.ts'

const silent = createLogger('processor-test', {})

/** A node holding one payment: transitions version-checked like the real one, claims and failovers included. */
function fakeNode (initial: NodePayment): { node: NodeClient, calls: TransitionCall[], current: () => NodePayment } {
  let payment = { ...initial }
  const calls: TransitionCall[] = []
  const node = {
    async transition (_id: string, call: TransitionCall) {
      calls.push(call)
      const failover = call.to === 'processing' && payment.status === 'processing' && call.pspProvider !== undefined && call.pspProvider !== payment.psp_provider
      if (!failover && payment.status === call.to) return { applied: false, payment }
      if (payment.version !== call.expectedVersion) throw Object.assign(new Error('stale'), { code: 'stale_version' })
      if (failover && (payment.psp_reference ?? '') !== '') throw new Error('a charged payment cannot move')
      payment = {
        ...payment, status: call.to, version: payment.version + 1,
        ...(call.pspProvider !== undefined ? { psp_provider: call.pspProvider } : {}),
        ...(call.pspReference !== undefined ? { psp_reference: call.pspReference } : {}),
      }
      return { applied: true, payment }
    },
    async get () { return payment },
  } as unknown as NodeClient
  return { node, calls, current: () => payment }
}

type Script = Array<ChargeOutcome | PspError>

/** A provider answering charges from `script` in turn (the last one repeats) and lookups from `found`. */
function provider (name: string, script: Script, found: () => ChargeOutcome | undefined | PspError = () => undefined): PspProvider & { charges: number, lookups: number } {
  const p = {
    name,
    manualCapture: true,
    charges: 0,
    lookups: 0,
    async charge (request: ChargeRequest): Promise<ChargeCall> {
      const next = script[Math.min(p.charges, script.length - 1)]!
      p.charges++
      if (next instanceof PspError) throw next
      return { outcome: next, httpStatus: 201, responseBody: { id: next.pspReference, reference: request.checkoutId }, latencyMs: 1 }
    },
    async findCharge () {
      p.lookups++
      const answer = found()
      if (answer instanceof PspError) throw answer
      return answer
    },
    chargeBody: (request: ChargeRequest) => request,
    refundBody: (request: unknown) => request,
    async cancelCharge () { throw new Error('unexpected') },
    async capture () { throw new Error('unexpected') },
    async refund () { throw new Error('unexpected') },
    async findRefund () { throw new Error('unexpected') },
    async close () {},
  }
  return p
}

const routing = parseRoutingConfig({
  providers: { nimbus: { cost: { percentBps: 100, fixedMinor: 20 } }, sandbox: { cost: { percentBps: 140, fixedMinor: 25 } } },
  merchants: { '*': [{ provider: 'nimbus', currencies: ['NOK'] }, { provider: 'sandbox' }] },
}, new Set(['nimbus', 'sandbox']))

function world (a: PspProvider, b: PspProvider, payment: NodePayment) {
  const { node, calls, current } = fakeNode(payment)
  // Breakers that never open here: these tests are about the proof, not the breaker.
  const limits = { ...defaultBreakerLimits, consecutiveFailuresMax: 1_000, callsMin: 1_000 }
  const psps = new PspRegistry([new GuardedProvider(b, limits), new GuardedProvider(a, limits)], routing)
  const routes: string[] = []
  const deps = {
    node, psp: psps.get(undefined), psps, attempts: { async record () {} }, pspSlots: new Semaphore(4), log: silent,
    flag: async () => {}, onRoute: (provider: string, reason: string) => routes.push(`${provider}:${reason}`),
    // 200 ms instead of 10 s: the rule is the same, the tests stay fast.
    failoverQuietMs: 200,
  } as unknown as ChargeFlowDeps
  return { deps, calls, current, routes }
}

function pending (over: Partial<NodePayment> = {}): NodePayment {
  return { checkout_id: 'co_fo', merchant_id: 'm', status: 'pending', version: 1, amount: 1000, currency: 'NOK', payment_method: 'pm_card_visa', description: '', ...over }
}

const refused = (): PspError => new PspError('psp_connection', 'connect ECONNREFUSED', { notReceived: true })
const timeout = (): PspError => new PspError('psp_timeout', 'no answer in time')
const succeeded = (ref: string): ChargeOutcome => ({ kind: 'succeeded', pspReference: ref })

t.test('claimed at the cheaper PSP, which refuses every connection: moved to the next one, recorded before its charge', async (t) => {
  const a = provider('nimbus', [refused()])
  const b = provider('sandbox', [succeeded('ch_b')])
  const w = world(a, b, pending())
  const ended = await drivePayment(w.deps, pending())
  t.equal(ended.status, 'succeeded')
  t.equal(ended.psp_provider, 'sandbox')
  t.same(w.calls.map((c) => [c.to, c.pspProvider, c.expectedVersion]), [
    ['processing', 'nimbus', 1], // the claim carries the router's choice
    ['processing', 'sandbox', 2], // the failover: version-checked, before the first attempt at sandbox
    ['succeeded', undefined, 3],
  ])
  t.ok(a.charges >= 1, 'nimbus was tried')
  t.equal(b.charges, 1, 'one charge, at sandbox')
  t.same(w.routes, ['nimbus:cost', 'sandbox:failover'])
})

t.test('routed to a PSP whose breaker is open by the time it charges: moved at once, nothing sent there', async (t) => {
  const a = provider('nimbus', [succeeded('ch_a')])
  const b = provider('sandbox', [succeeded('ch_b')])
  const w = world(a, b, pending())
  // Open nimbus' breaker after the claim chose it (the race this covers), by wrapping the claim.
  const claim = w.deps.node.transition.bind(w.deps.node)
  w.deps.node.transition = async (id: PaymentId, call: TransitionCall) => {
    const result = await claim(id, call)
    if (call.pspProvider === 'nimbus') {
      const breaker = w.deps.psps!.get('nimbus').breaker
      for (let i = 0; i < 1_000; i++) breaker.record(true, 1)
    }
    return result
  }
  const ended = await drivePayment(w.deps, pending())
  t.equal(ended.psp_provider, 'sandbox')
  t.equal(ended.status, 'succeeded')
  t.equal(a.charges, 0, 'nothing sent to nimbus')
  t.same(w.routes, ['nimbus:cost', 'sandbox:failover'])
})

t.test('a PSP failing every charge with a 5xx: the payment moves once a lookup after the quiet time finds nothing', async (t) => {
  const unavailable = (): PspError => new PspError('psp_unavailable', 'answered 503')
  const a = provider('nimbus', [unavailable()], () => undefined)
  const b = provider('sandbox', [succeeded('ch_b')])
  const w = world(a, b, pending())
  const startedAt = Date.now()
  const ended = await drivePayment(w.deps, pending())
  t.equal(ended.psp_provider, 'sandbox')
  t.equal(ended.status, 'succeeded')
  t.ok(a.lookups >= 1, 'nimbus was asked whether it holds a charge')
  t.ok(Date.now() - startedAt >= 200, 'not before the quiet time after its last 5xx')
  t.equal(b.charges, 1)
})

t.test('the same, but the lookup finds the charge the 5xx hid: it stays, and no other PSP charges', async (t) => {
  const unavailable = (): PspError => new PspError('psp_unavailable', 'answered 503')
  const a = provider('nimbus', [unavailable()], () => succeeded('ch_hidden'))
  const b = provider('sandbox', [succeeded('ch_b')])
  const w = world(a, b, pending())
  await t.rejects(drivePayment(w.deps, pending()), { name: 'DeadLetter', reason: 'psp_retries_exhausted' })
  t.equal(b.charges, 0)
  t.equal(w.current().psp_provider, 'nimbus', 'the watchdog finds the charge there later')
})

t.test('a timeout alone never moves a payment: no lookup answers, a dead letter, nothing at the other PSP', async (t) => {
  const lookedUpAt: number[] = []
  let lastTimeoutAt = 0
  const a = provider('nimbus', [timeout()], () => { lookedUpAt.push(Date.now()); return refused() })
  const charge = a.charge.bind(a)
  a.charge = async (request) => { try { return await charge(request) } finally { lastTimeoutAt = Date.now() } }
  const b = provider('sandbox', [succeeded('ch_b')])
  const w = world(a, b, pending())
  await t.rejects(drivePayment(w.deps, pending()), { name: 'DeadLetter', reason: 'psp_retries_exhausted' })
  t.equal(b.charges, 0, 'never charged elsewhere')
  t.ok(lookedUpAt.length >= 1 && lookedUpAt.every((at) => at - lastTimeoutAt >= 200), 'asked only after the quiet time since the last timeout')
  t.equal(w.current().psp_provider, 'nimbus', 'still recorded at nimbus: the watchdog re-drives it there')
})

t.test('a re-drive looks the charge up by reference first: found, it is applied and never charged again (key retention)', async (t) => {
  // The PSP forgot the key (past its retention): a charge with it would be a second one.
  const a = provider('nimbus', [succeeded('ch_second')], () => succeeded('ch_first'))
  const b = provider('sandbox', [succeeded('ch_b')])
  const claimed = pending({ status: 'processing', version: 2, psp_provider: 'nimbus' })
  const w = world(a, b, claimed)
  const ended = await drivePayment(w.deps, claimed)
  t.equal(ended.status, 'succeeded')
  t.equal(ended.psp_reference, 'ch_first', 'the charge found')
  t.equal(a.charges, 0, 'no charge call')
  t.equal(b.charges, 0)
})

t.test('a re-drive whose lookup fails is a dead letter, not a charge', async (t) => {
  const a = provider('nimbus', [succeeded('ch_second')], () => refused())
  const b = provider('sandbox', [succeeded('ch_b')])
  const claimed = pending({ status: 'processing', version: 2, psp_provider: 'nimbus' })
  const w = world(a, b, claimed)
  await t.rejects(drivePayment(w.deps, claimed), { name: 'DeadLetter', reason: 'psp_lookup_failed' })
  t.equal(a.charges + b.charges, 0)
})

t.test('a re-drive with nothing found stays at its PSP while no failover is proven', async (t) => {
  // Refused connects now, but this drive did not claim it: another driver's attempt may be in
  // flight, so only a lookup after the quiet time could move it.
  let lookups = 0
  const a = provider('nimbus', [refused()], () => (++lookups === 1 ? undefined : refused()))
  const b = provider('sandbox', [succeeded('ch_b')])
  const claimed = pending({ status: 'processing', version: 2, psp_provider: 'nimbus' })
  const w = world(a, b, claimed)
  await t.rejects(drivePayment(w.deps, claimed), { name: 'DeadLetter' })
  t.equal(b.charges, 0)
  t.equal(w.current().psp_provider, 'nimbus')
})

t.test('the proof: refused attempts since our own claim, or a lookup that finds nothing after the quiet time', async (t) => {
  const request = { checkoutId: 'co_p', merchantId: 'm', amount: 1, currency: 'NOK', paymentMethod: 'pm_card_visa', description: '' }
  const none = provider('nimbus', [], () => undefined)
  const charged = provider('nimbus', [], () => succeeded('ch_1'))
  const down = provider('nimbus', [], () => refused())
  t.ok(await provenUncharged(down, request, { refusedAttempts: 2 }, true), 'our claim, only refused attempts: proven without asking')
  t.equal(down.lookups, 0)
  t.notOk(await provenUncharged(down, request, { refusedAttempts: 2 }, false), 'not our claim: needs a lookup, which fails')
  t.ok(await provenUncharged(none, request, { refusedAttempts: 0, uncertainAtMs: Date.now() - 60_000 }, false), 'lookup finds nothing, long after the last uncertain attempt')
  t.notOk(await provenUncharged(none, request, { refusedAttempts: 0, uncertainAtMs: Date.now() }, false), 'too soon after an uncertain attempt: no lookup yet')
  t.notOk(await provenUncharged(charged, request, { refusedAttempts: 0 }, true), 'lookup finds the charge')
})

t.test('without a routing file, the claim still names the provider and nothing ever moves', async (t) => {
  const b = provider('sandbox', [succeeded('ch_b')])
  const { node, calls } = fakeNode(pending({ currency: 'EUR' }))
  const psps = new PspRegistry([new GuardedProvider(b, defaultBreakerLimits)], undefined)
  const deps = { node, psp: psps.get(undefined), psps, attempts: { async record () {} }, pspSlots: new Semaphore(4), log: silent, flag: async () => {} } as unknown as ChargeFlowDeps
  const ended = await drivePayment(deps, pending({ currency: 'EUR' }))
  t.equal(ended.status, 'succeeded')
  t.same(calls.map((c) => [c.to, c.pspProvider]), [['processing', 'sandbox'], ['succeeded', undefined]])
})
