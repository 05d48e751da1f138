// What every money-moving request of the simulator (a charge, a refund) goes through before its
// work: the bound on requests in flight, an injected 429, one request per idempotency key at a
// time; and its simulated latency, which shutdown cuts short.

import { PspError } from './errors.ts'
import type { RuntimeControl } from './faults.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'

export class RequestAdmission {
  readonly #runtime: RuntimeControl
  readonly #limits: PspLimits
  readonly #metrics: PspMetrics
  /** Idempotency keys of requests being worked on. Bounded by chargeRequestsInFlightMax. */
  readonly #keysInProgress = new Set<string>()
  /**
   * Simulated latencies still running, each with what cuts it short at shutdown. Plain timers in
   * a set, not timers/promises with an AbortSignal: that adds and removes an EventTarget listener
   * per request, which cost the simulator more than the timer itself.
   */
  readonly #sleeping = new Set<{ timer: NodeJS.Timeout, cut: () => void }>()
  #stopped = false
  #inFlight = 0

  constructor (deps: { runtime: RuntimeControl, limits: PspLimits, metrics: PspMetrics }) {
    this.#runtime = deps.runtime
    this.#limits = deps.limits
    this.#metrics = deps.metrics
  }

  get inFlight (): number {
    return this.#inFlight
  }

  get keysInProgress (): number {
    return this.#keysInProgress.size
  }

  /** Runs `work` for a request under `idempotencyKey`, or refuses it (429, 409 key in use). */
  async run<T> (idempotencyKey: string, attemptsCounter: 'attempts' | 'refundAttempts', work: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.#limits.chargeRequestsInFlightMax) {
      this.#metrics.count('concurrencyRejections')
      throw new PspError('rate_limited', { message: 'Too many concurrent requests; retry later', retryAfterS: 1 })
    }
    this.#metrics.count(attemptsCounter)
    if (this.#runtime.rateLimited()) {
      this.#metrics.count('injectedRateLimits')
      throw new PspError('rate_limited', { retryAfterS: 1 })
    }
    if (this.#keysInProgress.has(idempotencyKey)) {
      this.#metrics.count('idempotencyInUse')
      throw new PspError('idempotency_key_in_use')
    }
    this.#inFlight++
    this.#keysInProgress.add(idempotencyKey)
    try {
      return await work()
    } finally {
      this.#keysInProgress.delete(idempotencyKey)
      this.#inFlight--
    }
  }

  /**
   * The simulated latency. Shutdown cuts it short: `refuse` (nothing on disk yet) answers 503
   * shutting_down, nothing done; `finish` (the write is under way) lets the request be answered.
   */
  async latency (latencyMs: number, onShutdown: 'refuse' | 'finish'): Promise<void> {
    if (latencyMs <= 0) return
    const slept = this.#stopped ? 'cut' : await new Promise<'slept' | 'cut'>((resolve) => {
      const sleeper = {
        timer: setTimeout(() => { this.#sleeping.delete(sleeper); resolve('slept') }, latencyMs),
        cut: () => resolve('cut'),
      }
      this.#sleeping.add(sleeper)
    })
    if (slept === 'cut' && onShutdown === 'refuse') throw new PspError('shutting_down', { retryAfterS: 1 })
  }

  /** Cuts every simulated latency short. */
  stop (): void {
    this.#stopped = true
    for (const sleeper of this.#sleeping) {
      clearTimeout(sleeper.timer)
      sleeper.cut()
    }
    this.#sleeping.clear()
  }
}
