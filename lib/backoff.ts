// Capped exponential backoff with full jitter: attempt n waits a uniform random time in
// [0, min(delayMsMax, baseDelayMs * 2^n)]. Jitter spreads retries of many callers that failed
// together (a PSP or node outage), so they do not come back in lockstep.

export interface BackoffPolicy {
  baseDelayMs: number
  delayMsMax: number
}

export function backoffDelayMs (policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const ceilingMs = Math.min(policy.delayMsMax, policy.baseDelayMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceilingMs)
}

export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
