// Routing per merchant (issue #16): which PSP a payment goes to, and where it may fail over.

import t from 'tap'
import { costOf, parseRoutingConfig, paymentMethodTypeOf, Router, type ProviderStatus, type RoutablePayment } from '../psp/routing.ts'

const known = new Set(['sandbox', 'nimbus'])
const config = parseRoutingConfig({
  providers: { sandbox: { cost: { percentBps: 140, fixedMinor: 25 } }, nimbus: { cost: { percentBps: 100, fixedMinor: 20 } } },
  merchants: {
    '*': [{ provider: 'nimbus', currencies: ['NOK'] }, { provider: 'sandbox' }],
    m_amounts: [{ provider: 'nimbus', amountMin: 100, amountMax: 10_000, paymentMethodTypes: ['card'] }, { provider: 'sandbox' }],
    m_even: [{ provider: 'sandbox', weight: 1 }, { provider: 'sandbox', weight: 1 }, { provider: 'nimbus', currencies: ['XXX'] }],
  },
}, known)

function payment (over: Partial<RoutablePayment> = {}): RoutablePayment {
  return { checkoutId: 'co_1', merchantId: 'm', amount: 1000, currency: 'NOK', paymentMethod: 'pm_card_visa', manualCapture: false, ...over }
}

function router (status: Record<string, Partial<ProviderStatus>> = {}): Router {
  return new Router(config, (name) => known.has(name)
    ? { manualCapture: name === 'sandbox', routable: true, ...status[name] }
    : undefined, 'sandbox')
}

t.test('the cheapest fitting provider wins', async (t) => {
  t.equal(costOf({ percentBps: 140, fixedMinor: 25 }, 1000), 25 + 14)
  t.equal(costOf({ percentBps: 100, fixedMinor: 20 }, 1001), 20 + 11, 'rounded up: never a fraction of a minor unit')
  t.same(router().choose(payment()), { provider: 'nimbus', reason: 'cost' })
  t.same(router().choose(payment({ currency: 'EUR' })), { provider: 'sandbox', reason: 'only_fit' }, 'the nimbus rule is NOK only')
})

t.test('amount range, payment method type and manual capture decide what fits', async (t) => {
  const r = router()
  t.equal(r.choose(payment({ merchantId: 'm_amounts', currency: 'EUR', amount: 10_000 })).provider, 'nimbus', 'within the inclusive range')
  t.equal(r.choose(payment({ merchantId: 'm_amounts', currency: 'EUR', amount: 10_001 })).provider, 'sandbox', 'above amountMax')
  t.equal(r.choose(payment({ merchantId: 'm_amounts', currency: 'EUR', amount: 99 })).provider, 'sandbox', 'below amountMin')
  t.equal(r.choose(payment({ merchantId: 'm_amounts', currency: 'EUR', paymentMethod: 'pm_wallet_x' })).provider, 'sandbox', 'not a card')
  t.equal(paymentMethodTypeOf('pm_card_visa'), 'card')
  t.equal(paymentMethodTypeOf('tok_123'), 'unknown')
  t.same(r.choose(payment({ manualCapture: true })), { provider: 'sandbox', reason: 'only_fit' }, 'nimbus cannot authorize only')
})

t.test('an open breaker is skipped while another fits; with none healthy the cheapest fitting still goes', async (t) => {
  t.same(router({ nimbus: { routable: false } }).choose(payment()), { provider: 'sandbox', reason: 'breaker_skip' })
  t.same(router({ nimbus: { routable: false }, sandbox: { routable: false } }).choose(payment()), { provider: 'nimbus', reason: 'cost' })
})

t.test('equal costs are split by weight, the same way for the same checkout id', async (t) => {
  const r = router()
  const counts = new Map<string, number>()
  for (let i = 0; i < 200; i++) {
    const route = r.choose(payment({ merchantId: 'm_even', currency: 'EUR', checkoutId: `co_${i}` }))
    t.equal(route.reason, 'weight')
    t.same(r.choose(payment({ merchantId: 'm_even', currency: 'EUR', checkoutId: `co_${i}` })), route, 'deterministic per checkout id')
    counts.set(route.provider, (counts.get(route.provider) ?? 0) + 1)
  }
  t.same([...counts.keys()], ['sandbox'])
})

t.test('failover goes to the next fitting provider in list order whose breaker is not open', async (t) => {
  t.equal(router().failoverTarget(payment(), 'nimbus'), 'sandbox')
  t.equal(router().failoverTarget(payment(), 'sandbox'), 'nimbus')
  t.equal(router().failoverTarget(payment({ currency: 'EUR' }), 'sandbox'), undefined, 'nothing else fits')
  t.equal(router({ sandbox: { routable: false } }).failoverTarget(payment(), 'nimbus'), undefined, 'the other one is open too')
})

t.test('a bad routing file is refused with what is wrong', async (t) => {
  const base = { providers: { sandbox: { cost: { percentBps: 1, fixedMinor: 1 } } }, merchants: { '*': [{ provider: 'sandbox' }] } }
  t.throws(() => parseRoutingConfig({ ...base, providers: { stripe: { cost: { percentBps: 1, fixedMinor: 1 } } } }, known), { code: 'routing_config_invalid', message: /provider stripe is not configured/ }, 'unknown provider')
  t.throws(() => parseRoutingConfig({ ...base, merchants: { m: [{ provider: 'sandbox' }] } }, known), /"\*" list/)
  t.throws(() => parseRoutingConfig({ ...base, merchants: { '*': [{ provider: 'nimbus' }] } }, known), /provider must be one of providers/)
  t.throws(() => parseRoutingConfig({ ...base, merchants: { '*': [{ provider: 'sandbox', amountMax: 1.5 }] } }, known), /amountMax/)
  t.throws(() => parseRoutingConfig({ ...base, merchants: { '*': [{ provider: 'sandbox', currencies: ['eur'] }] } }, known), /ISO 4217/)
  t.throws(() => parseRoutingConfig({ ...base, providers: { sandbox: { cost: { percentBps: 0.5, fixedMinor: 1 } } } }, known), /cost/)
})
