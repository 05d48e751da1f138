// The processor's PSPs (issue #16): each provider behind its own circuit breaker, looked up by the
// name recorded on the payment, and the router that picks one for a payment being claimed.

import { CircuitBreaker, type BreakerLimits, type BreakerState } from './breaker.ts'
import type { PspProvider } from './provider.ts'
import { Router, type RoutablePayment, type Route, type RoutingConfig } from './routing.ts'
import { PspError, type PspErrorCode } from './types.ts'

/** Our breaker refused the call: nothing was sent. `retryAtMs`: when it lets a probe through. */
export class CircuitOpenError extends PspError {
  readonly provider: string
  readonly retryAtMs: number
  constructor (provider: string, retryAtMs: number) {
    super('psp_unavailable', `${provider}: circuit open, call not sent`, { notReceived: true })
    this.name = 'CircuitOpenError'
    this.provider = provider
    this.retryAtMs = retryAtMs
  }
}

/** Errors that say the PSP is not working (a decline or a refusal of ours says it is). */
const breakerFailures: ReadonlySet<PspErrorCode> = new Set(['psp_timeout', 'psp_connection', 'psp_unavailable', 'psp_rate_limited'])

export interface ProviderHooks {
  onCall?: (provider: string, result: 'ok' | 'error', latencyMs: number) => void
  onBreakerState?: (provider: string, state: BreakerState) => void
}

/** A provider whose every call goes through its breaker. */
export class GuardedProvider implements PspProvider {
  readonly inner: PspProvider
  readonly breaker: CircuitBreaker
  readonly #hooks: ProviderHooks

  constructor (inner: PspProvider, limits: BreakerLimits, hooks: ProviderHooks = {}, now?: () => number) {
    this.inner = inner
    this.#hooks = hooks
    this.breaker = new CircuitBreaker(limits, { ...(now ? { now } : {}), onChange: (state) => hooks.onBreakerState?.(inner.name, state) })
  }

  get name (): string { return this.inner.name }
  get manualCapture (): boolean { return this.inner.manualCapture }

  async #guard<T> (call: () => Promise<T>): Promise<T> {
    if (!this.breaker.tryAcquire()) throw new CircuitOpenError(this.name, this.breaker.retryAtMs)
    const startedAt = performance.now()
    try {
      const result = await call()
      const latencyMs = performance.now() - startedAt
      this.breaker.record(false, latencyMs)
      this.#hooks.onCall?.(this.name, 'ok', latencyMs)
      return result
    } catch (error) {
      const latencyMs = performance.now() - startedAt
      if (error instanceof PspError) {
        const failed = breakerFailures.has(error.code)
        this.breaker.record(failed, latencyMs)
        this.#hooks.onCall?.(this.name, failed ? 'error' : 'ok', latencyMs)
      } else {
        this.breaker.release()
      }
      throw error
    }
  }

  charge: PspProvider['charge'] = (request, signal) => this.#guard(() => this.inner.charge(request, signal))
  cancelCharge: PspProvider['cancelCharge'] = (reference) => this.#guard(() => this.inner.cancelCharge(reference))
  capture: PspProvider['capture'] = (request) => this.#guard(() => this.inner.capture(request))
  refund: PspProvider['refund'] = (request) => this.#guard(() => this.inner.refund(request))
  findCharge: PspProvider['findCharge'] = (request) => this.#guard(() => this.inner.findCharge(request))
  findRefund: PspProvider['findRefund'] = (request) => this.#guard(() => this.inner.findRefund(request))
  chargeBody: PspProvider['chargeBody'] = (request) => this.inner.chargeBody(request)
  refundBody: PspProvider['refundBody'] = (request) => this.inner.refundBody(request)
  close = (): Promise<void> => this.inner.close()
}

export class PspRegistry {
  readonly #providers = new Map<string, GuardedProvider>()
  readonly fallback: string
  readonly router: Router | undefined

  /** `providers[0]` is the fallback (the sandbox: payments from before routing were charged there). */
  constructor (providers: readonly GuardedProvider[], config: RoutingConfig | undefined) {
    if (providers.length === 0) throw new RangeError('at least one PSP provider')
    for (const provider of providers) this.#providers.set(provider.name, provider)
    this.fallback = providers[0]!.name
    this.router = config === undefined
      ? undefined
      : new Router(config, (name) => {
        const provider = this.#providers.get(name)
        return provider === undefined ? undefined : { manualCapture: provider.manualCapture, routable: provider.breaker.routable }
      }, this.fallback)
  }

  get names (): string[] { return [...this.#providers.keys()] }

  /** The provider a payment is recorded at ('' or absent: from before routing, the fallback). */
  get (name: string | undefined): GuardedProvider {
    const provider = this.#providers.get(name === undefined || name === '' ? this.fallback : name)
    // A payment recorded at a provider this processor does not have: a deployment error, not a retry.
    if (provider === undefined) throw new PspError('psp_auth', `provider ${String(name)} is not configured on this processor`)
    return provider
  }

  /** Where a payment being claimed goes: the router's choice, or the fallback without routing. */
  choose (payment: RoutablePayment): Route {
    return this.router?.choose(payment) ?? { provider: this.fallback, reason: 'no_rule' }
  }

  /** Whether a payment at `from` could ever fail over (another provider fits it). */
  canFailOver (payment: RoutablePayment, from: string): boolean {
    return this.router?.hasAlternative(payment, from) ?? false
  }

  failoverTarget (payment: RoutablePayment, from: string): string | undefined {
    return this.router?.failoverTarget(payment, from)
  }

  async close (): Promise<void> {
    await Promise.allSettled([...this.#providers.values()].map((p) => p.close()))
  }
}
