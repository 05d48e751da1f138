// Randomness for fault injection, latency and generated data. A seed makes a benchmark's fault
// pattern repeatable (given the same request order); without one, Math.random is used.
// Never used for ids that must be unguessable: those come from node:crypto (ids.ts).

/** A source of uniform numbers in [0, 1). */
export type Random = () => number

/** sfc32: small, fast and good enough for simulation (not for secrets). */
export function seededRandom (seed: number): Random {
  let a = 0x9e3779b9
  let b = 0x243f6a88
  let c = 0xb7e15162
  let d = (seed >>> 0) ^ 0xdeadbeef
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0
    const t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    const out = (t + d) | 0
    c = (c + out) | 0
    return (out >>> 0) / 4294967296
  }
  // The first outputs of sfc32 still echo the seed; discard them.
  for (let i = 0; i < 12; i++) next()
  return next
}

export function randomSource (seed: number | undefined): Random {
  return seed === undefined ? Math.random : seededRandom(seed)
}

/** A 32-bit seed from a string (FNV-1a), for per-date deterministic fabrications. */
export function seedFromString (text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/** True with probability `rate` (0 never draws, so a rate of 0 leaves a seeded sequence untouched). */
export function chance (random: Random, rate: number): boolean {
  if (rate <= 0) return false
  if (rate >= 1) return true
  return random() < rate
}

/** An integer uniformly in [min, max]. */
export function randomInt (random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}

// z such that P(Z <= z) = 0.99 for a standard normal Z.
const z99 = 2.3263478740408408

/**
 * A lognormal sampler with the given median and 99th percentile (ms): ln X ~ N(mu, sigma) with
 * mu = ln(median) and sigma = (ln(p99) - ln(median)) / z99. p99 == median gives a constant,
 * which tests use for deterministic timing. A median of 0 means no latency.
 */
export function lognormalMs (random: Random, medianMs: number, p99Ms: number, capMs: number): number {
  if (medianMs <= 0) return 0
  const mu = Math.log(medianMs)
  const sigma = p99Ms > medianMs ? (Math.log(p99Ms) - mu) / z99 : 0
  if (sigma === 0) return Math.min(medianMs, capMs)
  // Box-Muller; 1 - random() keeps the logarithm's argument in (0, 1].
  const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  return Math.min(Math.exp(mu + sigma * normal), capMs)
}
