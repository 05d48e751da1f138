// The cap on failed API key attempts per client IP (limits.ts: failedKeyAttemptsMax per
// failedKeyWindowMs, failedKeyTrackedIpsMax IPs). A fixed window opens at an IP's first failure;
// once the IP has failed failedKeyAttemptsMax times in it, every request from it that names a
// merchant is refused until the window ends, a right key included, so guessing cannot go on
// under cover of some valid traffic.
//
// Cost: an authenticated request does one Map lookup, and none while no IP has failed lately.

export interface FailedKeyLimits {
  failedKeyAttemptsMax: number
  failedKeyWindowMs: number
  failedKeyTrackedIpsMax: number
}

interface Window {
  startedAtMs: number
  failures: number
}

export class FailedKeyLimiter {
  readonly #limits: FailedKeyLimits
  /** By client IP, in window start order (a new window is re-inserted): the first is the oldest. */
  readonly #windows = new Map<string, Window>()

  constructor (limits: FailedKeyLimits) {
    this.#limits = limits
  }

  get trackedIps (): number {
    return this.#windows.size
  }

  /** Seconds (≥ 1) until `ip` may try again, or 0 if it is not blocked. */
  blockedForS (ip: string, nowMs: number): number {
    if (this.#windows.size === 0) return 0
    const window = this.#windows.get(ip)
    if (window === undefined) return 0
    const endsAtMs = window.startedAtMs + this.#limits.failedKeyWindowMs
    if (nowMs >= endsAtMs) {
      this.#windows.delete(ip)
      return 0
    }
    return window.failures >= this.#limits.failedKeyAttemptsMax ? Math.ceil((endsAtMs - nowMs) / 1000) : 0
  }

  /** Counts one failure of `ip`; returns the failures in its current window (the cap is reached at failedKeyAttemptsMax). */
  recordFailure (ip: string, nowMs: number): number {
    let window = this.#windows.get(ip)
    if (window === undefined || nowMs >= window.startedAtMs + this.#limits.failedKeyWindowMs) {
      if (window !== undefined) {
        this.#windows.delete(ip)
      } else if (this.#windows.size >= this.#limits.failedKeyTrackedIpsMax) {
        // Bounded memory: the oldest window goes (it is the nearest to its end anyway).
        const oldest = this.#windows.keys().next().value
        if (oldest !== undefined) this.#windows.delete(oldest)
      }
      window = { startedAtMs: nowMs, failures: 0 }
      this.#windows.set(ip, window)
    }
    window.failures++
    return window.failures
  }
}
