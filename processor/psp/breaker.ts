// A circuit breaker per PSP (issue #16). Closed, it counts calls in a sliding window of
// `bucketMs` buckets; it opens when, over at least `callsMin` calls in the last `windowMs`, the
// failures reach `errorRateMax`, or after `consecutiveFailuresMax` failures in a row. A failure is
// a transport error, a timeout, a 5xx or a 429, or an answer slower than `slowCallMs`; a decline is
// a success (the PSP works). Open, it refuses every call (fail fast, nothing sent) for `openMs`,
// then lets `probesMax` calls through at a time (half-open): a success closes it, a failure opens
// it again. Routing skips a provider whose breaker is open (not half-open); a payment already at that provider
// waits for it (charge-flow.ts): the breaker never moves a payment by itself.

export interface BreakerLimits {
  /** The error rate is judged over this many ms of calls. */
  windowMs: number
  /** Resolution of the window: windowMs / bucketMs buckets. */
  bucketMs: number
  /** Fewer calls in the window never open it (one failure of two is not an outage). */
  callsMin: number
  /** Failures / calls in the window at which it opens (0..1). */
  errorRateMax: number
  /** Failures in a row at which it opens, whatever the window says. */
  consecutiveFailuresMax: number
  /** A call slower than this counts as a failure (a PSP answering in 10 s is not working). */
  slowCallMs: number
  /** How long it stays open before probing. */
  openMs: number
  /** Calls let through at a time while half-open. */
  probesMax: number
}

// 10 s of calls in 1 s buckets; 20 calls and half of them failing, or 5 in a row, open it for 2 s.
// The processor's PSP headers timeout is 5 s, so a call at 4 s is slow but answered.
export const defaultBreakerLimits: BreakerLimits = {
  windowMs: 10_000,
  bucketMs: 1_000,
  callsMin: 20,
  errorRateMax: 0.5,
  consecutiveFailuresMax: 5,
  slowCallMs: 4_000,
  openMs: 2_000,
  probesMax: 1,
}

export function assertBreakerLimits (limits: BreakerLimits): void {
  if (!(limits.bucketMs > 0 && limits.windowMs >= limits.bucketMs && limits.windowMs % limits.bucketMs === 0)) throw new RangeError('windowMs must be a multiple of bucketMs')
  if (!(limits.errorRateMax > 0 && limits.errorRateMax <= 1)) throw new RangeError('errorRateMax must be within (0, 1]')
  if (!(limits.callsMin >= 1 && limits.consecutiveFailuresMax >= 1 && limits.probesMax >= 1 && limits.openMs > 0 && limits.slowCallMs > 0)) {
    throw new RangeError('breaker limits must be positive')
  }
}

export type BreakerState = 'closed' | 'open' | 'half_open'
export const breakerStateValue: Readonly<Record<BreakerState, number>> = { closed: 0, half_open: 1, open: 2 }

export class CircuitBreaker {
  readonly #limits: BreakerLimits
  readonly #now: () => number
  readonly #calls: number[]
  readonly #failures: number[]
  #bucketStartMs = 0
  #bucketIndex = 0
  #consecutiveFailures = 0
  #state: BreakerState = 'closed'
  #openedAtMs = 0
  #probesInFlight = 0
  readonly #onChange: ((state: BreakerState) => void) | undefined

  constructor (limits: BreakerLimits, options: { now?: () => number, onChange?: (state: BreakerState) => void } = {}) {
    assertBreakerLimits(limits)
    this.#limits = limits
    this.#now = options.now ?? Date.now
    this.#onChange = options.onChange
    const buckets = limits.windowMs / limits.bucketMs
    this.#calls = new Array<number>(buckets).fill(0)
    this.#failures = new Array<number>(buckets).fill(0)
    this.#bucketStartMs = this.#now()
  }

  get state (): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAtMs >= this.#limits.openMs) this.#set('half_open')
    return this.#state
  }

  /** When an open breaker lets a probe through (ms since the epoch of `now`); 0 when not open. */
  get retryAtMs (): number {
    return this.state === 'open' ? this.#openedAtMs + this.#limits.openMs : 0
  }

  /**
   * Whether a call may go now. A `true` while half-open takes a probe slot: the caller must then
   * report the call (`record`) or give the slot back (`release`).
   */
  tryAcquire (): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open' || this.#probesInFlight >= this.#limits.probesMax) return false
    this.#probesInFlight++
    return true
  }

  /**
   * Whether routing may choose this provider now (no probe slot taken): closed, or half-open. In
   * half-open new payments go there so that one probes; the others find no slot free
   * (CircuitOpenError, nothing sent) and fail over at once. Without that, a provider nobody calls
   * would never be probed and its traffic would never come back.
   */
  get routable (): boolean {
    return this.state !== 'open'
  }

  release (): void {
    if (this.#probesInFlight > 0) this.#probesInFlight--
  }

  /** Reports a call that went out: `failed` (transport, timeout, 5xx, 429) or its latency. */
  record (failed: boolean, latencyMs: number): void {
    const failure = failed || latencyMs > this.#limits.slowCallMs
    const state = this.state
    if (state === 'half_open') {
      this.release()
      if (failure) this.#open()
      else this.#close()
      return
    }
    if (state === 'open') return
    this.#advance()
    this.#calls[this.#bucketIndex]!++
    if (failure) {
      this.#failures[this.#bucketIndex]!++
      this.#consecutiveFailures++
    } else {
      this.#consecutiveFailures = 0
    }
    if (this.#consecutiveFailures >= this.#limits.consecutiveFailuresMax) return this.#open()
    let calls = 0
    let failures = 0
    for (let i = 0; i < this.#calls.length; i++) {
      calls += this.#calls[i]!
      failures += this.#failures[i]!
    }
    if (calls >= this.#limits.callsMin && failures / calls >= this.#limits.errorRateMax) this.#open()
  }

  /** Moves the window to the bucket of now, emptying the buckets passed over (at most all of them). */
  #advance (): void {
    const now = this.#now()
    const passed = Math.floor((now - this.#bucketStartMs) / this.#limits.bucketMs)
    if (passed <= 0) return
    for (let i = 0; i < Math.min(passed, this.#calls.length); i++) {
      this.#bucketIndex = (this.#bucketIndex + 1) % this.#calls.length
      this.#calls[this.#bucketIndex] = 0
      this.#failures[this.#bucketIndex] = 0
    }
    this.#bucketStartMs += passed * this.#limits.bucketMs
  }

  #open (): void {
    this.#openedAtMs = this.#now()
    this.#probesInFlight = 0
    this.#set('open')
  }

  #close (): void {
    this.#calls.fill(0)
    this.#failures.fill(0)
    this.#consecutiveFailures = 0
    this.#bucketStartMs = this.#now()
    this.#set('closed')
  }

  #set (state: BreakerState): void {
    if (this.#state === state) return
    this.#state = state
    this.#onChange?.(state)
  }
}
