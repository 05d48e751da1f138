// The live runtime configuration and the random decisions taken from it: simulated latency and
// injected faults. Rule-based faults (a payment method token that always fails once) live in
// rules.ts; this is the "configurable randomness" benchmarks turn on.

import { applyRuntimePatch, type RuntimeConfig } from './config.ts'
import type { PspLimits } from './limits.ts'
import { chance, lognormalMs, randomInt, randomSource, type Random } from './random.ts'

export class RuntimeControl {
  #config: RuntimeConfig
  #random: Random
  readonly #limits: PspLimits

  constructor (config: RuntimeConfig, limits: PspLimits) {
    this.#config = config
    this.#limits = limits
    this.#random = randomSource(config.seed ?? undefined)
  }

  get config (): Readonly<RuntimeConfig> {
    return this.#config
  }

  get random (): Random {
    return this.#random
  }

  /** Applies a validated patch. A seed in the patch restarts the random sequence, even if unchanged. */
  update (patch: Partial<RuntimeConfig>): RuntimeConfig {
    this.#config = applyRuntimePatch(this.#config, patch)
    if ('seed' in patch) this.#random = randomSource(this.#config.seed ?? undefined)
    return this.#config
  }

  latencyMs (): number {
    return lognormalMs(this.#random, this.#config.latencyMedianMs, this.#config.latencyP99Ms, this.#limits.latencyMsMax)
  }

  rateLimited (): boolean {
    return chance(this.#random, this.#config.rateLimitRate)
  }

  /** 500 or 503 (evenly) when an injected server error is due, else undefined. */
  serverError (): 500 | 503 | undefined {
    if (!chance(this.#random, this.#config.error5xxRate)) return undefined
    return this.#random() < 0.5 ? 500 : 503
  }

  timeoutAfterCharge (): boolean {
    return chance(this.#random, this.#config.timeoutAfterChargeRate)
  }

  webhookDropped (): boolean {
    return chance(this.#random, this.#config.webhookDropRate)
  }

  webhookDuplicated (): boolean {
    return chance(this.#random, this.#config.webhookDuplicateRate)
  }

  webhookReordered (): boolean {
    return chance(this.#random, this.#config.webhookReorderRate)
  }

  webhookDelayMs (): number {
    const max = this.#config.webhookDelayMsMax
    return max <= 0 ? 0 : randomInt(this.#random, 0, max)
  }
}
