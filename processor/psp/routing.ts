// Routing per merchant (issue #16): which PSP a payment goes to. The processors read one JSON file
// (RINGPAY_PSP_ROUTING_FILE; README "PSP routing"):
//
//   {
//     "providers": { "sandbox": { "cost": { "percentBps": 140, "fixedMinor": 25 } },
//                    "nimbus":  { "cost": { "percentBps": 120, "fixedMinor": 30 } } },
//     "merchants": {
//       "*": [ { "provider": "sandbox" }, { "provider": "nimbus", "currencies": ["EUR"], "amountMax": 100000, "weight": 2 } ],
//       "merchant_demo": [ … ]
//     }
//   }
//
// A merchant's rules (else "*"'s) are an ordered list; a rule fits a payment when its currency,
// amount range (integer minor units, inclusive) and payment method type (the token's family:
// `pm_card_…` is `card`) match, and its provider can do what the payment needs (manual capture).
// Of the fitting rules whose provider's breaker is closed (all fitting ones if none is), the
// cheapest wins (fixedMinor + amount × percentBps / 10 000, rounded up); equal costs are split
// by weight, deterministically per checkout id. The list's order is the failover order.
// No file: every payment goes to the sandbox PSP, as before routing.

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'

export interface ProviderCost {
  /** Per-payment fee in basis points of the amount (1 bp = 0.01 %). */
  percentBps: number
  /** Per-payment fee in minor units (of the payment's currency: a sandbox's simplification). */
  fixedMinor: number
}

export interface RoutingRule {
  provider: string
  currencies?: readonly string[]
  /** Inclusive, integer minor units. */
  amountMin?: number
  amountMax?: number
  paymentMethodTypes?: readonly string[]
  /** Share among rules of equal cost; default 1. */
  weight: number
}

export interface RoutingConfig {
  providers: Readonly<Record<string, { cost: ProviderCost }>>
  merchants: Readonly<Record<string, readonly RoutingRule[]>>
}

export interface RoutablePayment {
  checkoutId: string
  merchantId: string
  amount: number
  currency: string
  paymentMethod: string
  manualCapture: boolean
}

/** What routing needs to know of a provider now. */
export interface ProviderStatus {
  manualCapture: boolean
  /** Its breaker is closed. */
  routable: boolean
}

export type RouteReason = 'cost' | 'weight' | 'breaker_skip' | 'only_fit' | 'no_rule'
export interface Route { provider: string, reason: RouteReason }

export class RoutingConfigError extends Error {
  readonly code = 'routing_config_invalid'
}

const rulesPerMerchantMax = 16
const weightMax = 1_000
const providerNamePattern = /^[a-z][a-z0-9_-]{0,31}$/

/** The token's family: `pm_card_visa` → `card`; a token of another shape → `unknown`. */
export function paymentMethodTypeOf (token: string): string {
  return /^pm_([a-z]+)_/.exec(token)?.[1] ?? 'unknown'
}

export function costOf (cost: ProviderCost, amount: number): number {
  return cost.fixedMinor + Math.ceil(amount * cost.percentBps / 10_000)
}

/** Checks a parsed routing file against the providers this processor has; throws RoutingConfigError. */
export function parseRoutingConfig (raw: unknown, known: ReadonlySet<string>): RoutingConfig {
  const fail = (message: string): never => { throw new RoutingConfigError(message) }
  if (typeof raw !== 'object' || raw === null) fail('routing config must be a JSON object')
  const { providers, merchants } = raw as Record<string, any>
  if (typeof providers !== 'object' || providers === null) fail('providers must be an object')
  const costs: Record<string, { cost: ProviderCost }> = {}
  for (const [name, spec] of Object.entries(providers as Record<string, any>)) {
    if (!known.has(name)) fail(`provider ${name} is not configured on this processor (known: ${[...known].join(', ')})`)
    const percentBps = spec?.cost?.percentBps
    const fixedMinor = spec?.cost?.fixedMinor
    if (!Number.isSafeInteger(percentBps) || percentBps < 0 || percentBps > 10_000 || !Number.isSafeInteger(fixedMinor) || fixedMinor < 0) {
      fail(`provider ${name}: cost must be {percentBps: 0..10000, fixedMinor: integer ≥ 0}`)
    }
    costs[name] = { cost: { percentBps, fixedMinor } }
  }
  if (typeof merchants !== 'object' || merchants === null || !Array.isArray(merchants['*'])) fail('merchants must be an object with a "*" list')
  const lists: Record<string, RoutingRule[]> = {}
  for (const [merchant, list] of Object.entries(merchants as Record<string, any>)) {
    if (!Array.isArray(list) || list.length === 0 || list.length > rulesPerMerchantMax) fail(`merchants.${merchant}: 1..${rulesPerMerchantMax} rules`)
    lists[merchant] = (list as any[]).map((rule, i) => {
      const where = `merchants.${merchant}[${i}]`
      if (typeof rule?.provider !== 'string' || !providerNamePattern.test(rule.provider) || costs[rule.provider] === undefined) fail(`${where}: provider must be one of providers`)
      const parsed: RoutingRule = { provider: rule.provider, weight: rule.weight ?? 1 }
      if (!Number.isSafeInteger(parsed.weight) || parsed.weight < 1 || parsed.weight > weightMax) fail(`${where}: weight must be an integer 1..${weightMax}`)
      if (rule.currencies !== undefined) {
        if (!Array.isArray(rule.currencies) || !rule.currencies.every((c: unknown) => typeof c === 'string' && /^[A-Z]{3}$/.test(c))) fail(`${where}: currencies must be ISO 4217 codes`)
        parsed.currencies = rule.currencies
      }
      for (const bound of ['amountMin', 'amountMax'] as const) {
        if (rule[bound] === undefined) continue
        if (!Number.isSafeInteger(rule[bound]) || rule[bound] < 0) fail(`${where}: ${bound} must be integer minor units`)
        parsed[bound] = rule[bound]
      }
      if (rule.paymentMethodTypes !== undefined) {
        if (!Array.isArray(rule.paymentMethodTypes) || !rule.paymentMethodTypes.every((t: unknown) => typeof t === 'string')) fail(`${where}: paymentMethodTypes must be strings`)
        parsed.paymentMethodTypes = rule.paymentMethodTypes
      }
      return parsed
    })
  }
  return { providers: costs, merchants: lists }
}

export function loadRoutingConfig (file: string, known: ReadonlySet<string>): RoutingConfig {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new RoutingConfigError(`cannot read ${file}: ${(error as Error).message}`, { cause: error })
  }
  return parseRoutingConfig(raw, known)
}

function fits (rule: RoutingRule, payment: RoutablePayment, status: ProviderStatus | undefined): boolean {
  if (status === undefined || (payment.manualCapture && !status.manualCapture)) return false
  if (rule.currencies !== undefined && !rule.currencies.includes(payment.currency)) return false
  if (rule.amountMin !== undefined && payment.amount < rule.amountMin) return false
  if (rule.amountMax !== undefined && payment.amount > rule.amountMax) return false
  if (rule.paymentMethodTypes !== undefined && !rule.paymentMethodTypes.includes(paymentMethodTypeOf(payment.paymentMethod))) return false
  return true
}

/** A number in [0, total) fixed by the checkout id: the same payment gets the same weighted pick. */
function spot (checkoutId: string, total: number): number {
  return createHash('sha256').update(checkoutId).digest().readUInt32BE(0) % total
}

export class Router {
  readonly #config: RoutingConfig
  readonly #status: (provider: string) => ProviderStatus | undefined
  readonly #fallback: string

  /** `fallback`: the provider of a payment no rule fits (and of payments from before routing). */
  constructor (config: RoutingConfig, status: (provider: string) => ProviderStatus | undefined, fallback: string) {
    this.#config = config
    this.#status = status
    this.#fallback = fallback
  }

  #fitting (payment: RoutablePayment): RoutingRule[] {
    const rules = this.#config.merchants[payment.merchantId] ?? this.#config.merchants['*'] ?? []
    return rules.filter((rule) => fits(rule, payment, this.#status(rule.provider)))
  }

  choose (payment: RoutablePayment): Route {
    const fit = this.#fitting(payment)
    if (fit.length === 0) return { provider: this.#fallback, reason: 'no_rule' }
    const healthy = fit.filter((rule) => this.#status(rule.provider)!.routable)
    const pool = healthy.length > 0 ? healthy : fit
    const costs = pool.map((rule) => costOf(this.#config.providers[rule.provider]!.cost, payment.amount))
    const cheapest = Math.min(...costs)
    const tied = pool.filter((_, i) => costs[i] === cheapest)
    let pick = tied[0]!
    if (tied.length > 1) {
      let at = spot(payment.checkoutId, tied.reduce((sum, rule) => sum + rule.weight, 0))
      for (const rule of tied) {
        if (at < rule.weight) { pick = rule; break }
        at -= rule.weight
      }
    }
    const reason: RouteReason = healthy.length > 0 && healthy.length < fit.length ? 'breaker_skip' : fit.length === 1 ? 'only_fit' : tied.length > 1 ? 'weight' : 'cost'
    return { provider: pick.provider, reason }
  }

  /** Whether any provider other than `from` fits the payment, whatever its breaker says. */
  hasAlternative (payment: RoutablePayment, from: string): boolean {
    return this.#fitting(payment).some((rule) => rule.provider !== from)
  }

  /** The next fitting provider after `from` in list order whose breaker is closed; undefined: none. */
  failoverTarget (payment: RoutablePayment, from: string): string | undefined {
    return this.#fitting(payment).find((rule) => rule.provider !== from && this.#status(rule.provider)!.routable)?.provider
  }
}
