// Small statistics helpers: percentiles over latency samples, medians over rounds, and the
// per-second time series the chart draws.

/** Nearest-rank percentile of an ascending-sorted array; NaN when empty. `p` in 0..100. */
export function percentileSorted (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  // The epsilon keeps 99.9 % of 1000 at rank 999 (0.999 × 1000 is 999.0000000000001 in floating point).
  const rank = Math.ceil((p / 100) * sorted.length - 1e-9)
  const index = Math.min(sorted.length - 1, Math.max(0, rank - 1))
  return sorted[index] as number
}

/** Median of the finite values; NaN when there are none. */
export function median (values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = Math.floor(finite.length / 2)
  return finite.length % 2 === 1 ? finite[mid] as number : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2
}

export interface LatencySummaryMs {
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  mean: number
}

/** Summary of latency samples in microseconds, reported in milliseconds. Sorts `samplesUs` in place. */
export function summarizeLatencyUs (samplesUs: Float64Array): LatencySummaryMs {
  samplesUs.sort()
  let sum = 0
  for (const v of samplesUs) sum += v
  const ms = (us: number): number => us / 1000
  return {
    p50: ms(percentileSorted(samplesUs, 50)),
    p90: ms(percentileSorted(samplesUs, 90)),
    p99: ms(percentileSorted(samplesUs, 99)),
    p999: ms(percentileSorted(samplesUs, 99.9)),
    max: ms(samplesUs.length === 0 ? Number.NaN : samplesUs[samplesUs.length - 1] as number),
    mean: ms(samplesUs.length === 0 ? Number.NaN : sum / samplesUs.length),
  }
}

/** One second of a load run, by completion time. */
export interface SeriesPoint {
  /** Seconds since the load started (the bucket's start). */
  second: number
  /** Responses completed in this second. */
  responses: number
  non2xx: number
  p50Ms: number
  p99Ms: number
}

/**
 * Buckets responses by completion second. `endUs` and `latencyUs` are parallel arrays (latency
 * may be negative = unknown, e.g. an error answer without a checkout id); `status` 0 = no answer,
 * which is skipped.
 * Only whole seconds within `durationS` are returned: wrk stops mid-second.
 */
export function perSecondSeries (endUs: Float64Array, latencyUs: Float64Array, status: Uint16Array, count: number,
  durationS: number): SeriesPoint[] {
  const seconds = Math.max(0, Math.floor(durationS))
  const buckets: number[][] = Array.from({ length: seconds }, () => [])
  const responses = new Array<number>(seconds).fill(0)
  const non2xx = new Array<number>(seconds).fill(0)
  for (let i = 0; i < count; i++) {
    const s = status[i] as number
    if (s === 0) continue
    const second = Math.floor((endUs[i] as number) / 1e6)
    if (second < 0 || second >= seconds) continue
    responses[second]!++
    if (s < 200 || s > 299) non2xx[second]!++
    const lat = latencyUs[i] as number
    if (lat >= 0) buckets[second]!.push(lat)
  }
  return buckets.map((samples, second) => {
    const sorted = Float64Array.from(samples).sort()
    return {
      second,
      responses: responses[second]!,
      non2xx: non2xx[second]!,
      p50Ms: percentileSorted(sorted, 50) / 1000,
      p99Ms: percentileSorted(sorted, 99) / 1000,
    }
  })
}
