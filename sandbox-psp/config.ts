// Sandbox PSP configuration. Two parts:
//   - static: where it listens, where it stores, its secrets, its limits (environment / CLI flags);
//   - runtime: latency, fault rates and webhook switches, initial values from the environment or
//     CLI flags, then changed live through PUT /admin/config (benchmarks, the fault suite).
// Every runtime setting has one environment variable and one flag, derived from the same table:
// latencyMedianMs <-> PSP_LATENCY_MEDIAN_MS <-> --latency-median-ms. Flags win over the environment.

import { PspError } from './errors.ts'
import { assertPspLimits, defaultPspLimits, type PspLimits } from './limits.ts'

export interface RuntimeConfig {
  /** Simulated processing time of POST /v1/charges: lognormal with this median and p99. */
  latencyMedianMs: number
  latencyP99Ms: number
  /** Share of charge requests answered 500/503 without charging. */
  error5xxRate: number
  /** Share of new charges written durably and then not answered (held, then the socket destroyed). */
  timeoutAfterChargeRate: number
  /** Share of charge requests answered 429 with Retry-After, without charging. */
  rateLimitRate: number
  /** How long a timeout-after-charge response is held before the socket is destroyed. */
  timeoutHoldMs: number
  /** Time from `pending` to the final status of an async charge. */
  asyncDelayMs: number
  /** Manual capture: an authorization not captured this long after it was made is voided (charge.canceled). */
  authorizationWindowMs: number
  /** Where webhooks go: <webhookBaseUrl>/webhooks/psp/sandbox/<reference>. null: no webhooks. */
  webhookBaseUrl: string | null
  /** Share of events delivered twice (same event id). */
  webhookDuplicateRate: number
  /** First deliveries wait a uniform random 0..webhookDelayMsMax. */
  webhookDelayMsMax: number
  /** Share of final events followed by a stale `charge.pending` event, delivered after the newer one. */
  webhookReorderRate: number
  /** Share of events never delivered. */
  webhookDropRate: number
  /** Seed for fault and latency randomness; null = Math.random. */
  seed: number | null
  /**
   * Issue #16: how long an idempotency key is remembered (real PSPs: about 24 h); 0 = forever.
   * Past it, the key is forgotten by POST /v1/charges (a new charge!) and by the list by key; the
   * charge itself stays, found by `GET /v1/charges?reference=`.
   */
  idempotencyKeyRetentionMs: number
}

export const defaultRuntimeConfig: RuntimeConfig = {
  latencyMedianMs: 0,
  latencyP99Ms: 0,
  error5xxRate: 0,
  timeoutAfterChargeRate: 0,
  rateLimitRate: 0,
  timeoutHoldMs: 30_000,
  asyncDelayMs: 2_000,
  // Stripe's card authorizations: 7 days.
  authorizationWindowMs: 7 * 24 * 60 * 60_000,
  webhookBaseUrl: null,
  webhookDuplicateRate: 0,
  webhookDelayMsMax: 0,
  webhookReorderRate: 0,
  webhookDropRate: 0,
  seed: null,
  idempotencyKeyRetentionMs: 0,
}

type SettingKind = 'rate' | 'ms' | 'url' | 'seed'

const runtimeSettings: Record<keyof RuntimeConfig, { kind: SettingKind, env: string, msMax?: (limits: PspLimits) => number }> = {
  latencyMedianMs: { kind: 'ms', env: 'PSP_LATENCY_MEDIAN_MS', msMax: (l) => l.latencyMsMax },
  latencyP99Ms: { kind: 'ms', env: 'PSP_LATENCY_P99_MS', msMax: (l) => l.latencyMsMax },
  error5xxRate: { kind: 'rate', env: 'PSP_ERROR_5XX_RATE' },
  timeoutAfterChargeRate: { kind: 'rate', env: 'PSP_TIMEOUT_AFTER_CHARGE_RATE' },
  rateLimitRate: { kind: 'rate', env: 'PSP_RATE_LIMIT_RATE' },
  timeoutHoldMs: { kind: 'ms', env: 'PSP_TIMEOUT_HOLD_MS', msMax: (l) => l.timeoutHoldMsMax },
  asyncDelayMs: { kind: 'ms', env: 'PSP_ASYNC_DELAY_MS', msMax: (l) => l.asyncDelayMsMax },
  authorizationWindowMs: { kind: 'ms', env: 'PSP_AUTHORIZATION_WINDOW_MS', msMax: (l) => l.authorizationWindowMsMax },
  webhookBaseUrl: { kind: 'url', env: 'PSP_WEBHOOK_BASE_URL' },
  webhookDuplicateRate: { kind: 'rate', env: 'PSP_WEBHOOK_DUPLICATE_RATE' },
  webhookDelayMsMax: { kind: 'ms', env: 'PSP_WEBHOOK_DELAY_MS_MAX', msMax: (l) => l.webhookDelayMsMax },
  webhookReorderRate: { kind: 'rate', env: 'PSP_WEBHOOK_REORDER_RATE' },
  webhookDropRate: { kind: 'rate', env: 'PSP_WEBHOOK_DROP_RATE' },
  seed: { kind: 'seed', env: 'PSP_RANDOM_SEED' },
  idempotencyKeyRetentionMs: { kind: 'ms', env: 'PSP_IDEMPOTENCY_KEY_RETENTION_MS', msMax: (l) => l.authorizationWindowMsMax },
}

/** Limits an operator may set from the environment; the rest are fixed in limits.ts. */
const limitSettings: Partial<Record<keyof PspLimits, string>> = {
  chargeRequestsInFlightMax: 'PSP_CHARGE_REQUESTS_IN_FLIGHT_MAX',
  webhookDeliveriesInFlightMax: 'PSP_WEBHOOK_DELIVERIES_IN_FLIGHT_MAX',
  webhookAttemptsMax: 'PSP_WEBHOOK_ATTEMPTS_MAX',
  webhookRetryBaseMs: 'PSP_WEBHOOK_RETRY_BASE_MS',
  webhookRetryMaxMs: 'PSP_WEBHOOK_RETRY_MAX_MS',
  webhookDeliveryTimeoutMs: 'PSP_WEBHOOK_DELIVERY_TIMEOUT_MS',
}

export interface PspConfig {
  host: string
  /** 0 = any free port (tests). */
  port: number
  dataDir: string
  /** Callers authenticate with `Authorization: Bearer <secretKey>`. */
  secretKey: string
  /** HMAC key of the Ringpay-Signature webhook header. */
  webhookSecret: string
  /** Where customers reach the PSP's pages (customer-action.ts); default: http://<host>:<port>. */
  publicBaseUrl?: string
  runtime: RuntimeConfig
  limits: PspLimits
}

/** What in-process callers pass to startSandboxPsp; everything but the essentials has a default. */
export interface PspOptions {
  host?: string
  port?: number
  dataDir: string
  secretKey: string
  webhookSecret: string
  publicBaseUrl?: string
  runtime?: Partial<RuntimeConfig>
  limits?: Partial<PspLimits>
}

export class ConfigError extends Error {
  readonly code = 'config_invalid'
}

const secretLengthMin = 16

export function resolvePspConfig (options: PspOptions): PspConfig {
  const limits: PspLimits = { ...defaultPspLimits, ...options.limits }
  assertPspLimits(limits)
  if (options.secretKey.length < secretLengthMin) throw new ConfigError(`secretKey must be at least ${secretLengthMin} characters`)
  if (options.webhookSecret.length < secretLengthMin) throw new ConfigError(`webhookSecret must be at least ${secretLengthMin} characters`)
  let runtime: RuntimeConfig
  try {
    runtime = applyRuntimePatch(defaultRuntimeConfig, parseRuntimePatch(options.runtime ?? {}, limits))
  } catch (error) {
    throw new ConfigError(`runtime: ${(error as Error).message}`)
  }
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    dataDir: options.dataDir,
    secretKey: options.secretKey,
    webhookSecret: options.webhookSecret,
    ...(options.publicBaseUrl !== undefined ? { publicBaseUrl: options.publicBaseUrl } : {}),
    runtime,
    limits,
  }
}

/** `--latency-median-ms=20` or `--latency-median-ms 20` -> PSP_LATENCY_MEDIAN_MS=20. */
export function flagsToEnv (argv: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${arg}`)
    const eq = arg.indexOf('=')
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (value === undefined) throw new ConfigError(`flag --${name} needs a value`)
    env['PSP_' + name.toUpperCase().replaceAll('-', '_')] = value
  }
  return env
}

function envInteger (env: Record<string, string | undefined>, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer within ${min}..${max}, got ${raw}`)
  }
  return value
}

function envRequired (env: Record<string, string | undefined>, name: string): string {
  const value = env[name]
  if (value === undefined || value === '') throw new ConfigError(`${name} is required`)
  return value
}

export function loadPspConfig (env: Record<string, string | undefined>): PspConfig {
  const limits: Partial<PspLimits> = {}
  for (const [name, variable] of Object.entries(limitSettings) as Array<[keyof PspLimits, string]>) {
    limits[name] = envInteger(env, variable, defaultPspLimits[name], 1, 10_000_000)
  }
  const runtime: Record<string, unknown> = {}
  for (const [name, setting] of Object.entries(runtimeSettings)) {
    const raw = env[setting.env]
    if (raw === undefined || raw === '') continue
    runtime[name] = setting.kind === 'url' ? raw : Number(raw)
  }
  const mergedLimits: PspLimits = { ...defaultPspLimits, ...limits }
  let patch: Partial<RuntimeConfig>
  try {
    patch = parseRuntimePatch(runtime, mergedLimits)
  } catch (error) {
    const setting = error instanceof PspError && error.param !== undefined
      ? runtimeSettings[error.param as keyof RuntimeConfig]?.env
      : undefined
    throw new ConfigError(`${setting ?? 'runtime setting'}: ${(error as Error).message}`)
  }
  return resolvePspConfig({
    host: env.PSP_HOST ?? '127.0.0.1',
    port: envInteger(env, 'PSP_PORT', 7090, 0, 65535),
    dataDir: envRequired(env, 'PSP_DATA_DIR'),
    secretKey: envRequired(env, 'PSP_SECRET_KEY'),
    webhookSecret: envRequired(env, 'PSP_WEBHOOK_SECRET'),
    ...(env.PSP_PUBLIC_BASE_URL !== undefined ? { publicBaseUrl: env.PSP_PUBLIC_BASE_URL } : {}),
    runtime: patch,
    limits: mergedLimits,
  })
}

/**
 * Validates a partial runtime configuration (the body of PUT /admin/config). Unknown keys and
 * out-of-range values are refused with the offending key as `param`.
 */
export function parseRuntimePatch (input: unknown, limits: PspLimits): Partial<RuntimeConfig> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new PspError('invalid_json')
  const patch: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(input)) {
    const setting = runtimeSettings[name as keyof RuntimeConfig] as (typeof runtimeSettings)[keyof RuntimeConfig] | undefined
    if (setting === undefined) throw new PspError('parameter_unknown', { param: name, message: `Unknown setting ${name}` })
    const invalid = (message: string): PspError => new PspError('parameter_invalid', { param: name, message: `${name} ${message}` })
    switch (setting.kind) {
      case 'rate':
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) throw invalid('must be a number within 0..1')
        break
      case 'ms': {
        const max = setting.msMax!(limits)
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) throw invalid(`must be an integer within 0..${max}`)
        break
      }
      case 'seed':
        if (value !== null && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 0xffffffff)) {
          throw invalid('must be null or an integer within 0..4294967295')
        }
        break
      case 'url':
        if (value !== null && (typeof value !== 'string' || !isHttpUrl(value))) throw invalid('must be null or an http(s) URL')
        break
    }
    patch[name] = setting.kind === 'url' && typeof value === 'string' ? value.replace(/\/+$/, '') : value
  }
  return patch as Partial<RuntimeConfig>
}

function isHttpUrl (value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === ''
  } catch {
    return false
  }
}

/** The next runtime configuration; the latency p99 may not be below the median. */
export function applyRuntimePatch (current: RuntimeConfig, patch: Partial<RuntimeConfig>): RuntimeConfig {
  const next: RuntimeConfig = { ...current, ...patch }
  // Setting only the median moves the p99 along, so "latencyMedianMs: 5" alone means a constant 5 ms.
  if (patch.latencyMedianMs !== undefined && patch.latencyP99Ms === undefined && next.latencyP99Ms < next.latencyMedianMs) {
    next.latencyP99Ms = next.latencyMedianMs
  }
  if (next.latencyP99Ms < next.latencyMedianMs) {
    throw new PspError('parameter_invalid', { param: 'latencyP99Ms', message: 'latencyP99Ms must be at least latencyMedianMs' })
  }
  return next
}
