// Pure parts: fee math, the latency distribution, retry backoff, outcome rules, configuration.

import t from 'tap'
import { applyRuntimePatch, defaultRuntimeConfig, flagsToEnv, loadPspConfig, parseRuntimePatch } from '../config.ts'
import { PspError } from '../errors.ts'
import { assertPspLimits, defaultPspLimits } from '../limits.ts'
import { feeFor, netFor, normaliseCurrency } from '../money.ts'
import { retryDelayMs } from '../outbox.ts'
import { lognormalMs, seededRandom } from '../random.ts'
import { knownPaymentMethods, ruleFor } from '../rules.ts'
import { isReportDate } from '../settlement.ts'

t.test('fee = round_half_up(amount * 1.4 %) + 25, capped at the amount; net = amount - fee', async (t) => {
  t.equal(feeFor(1999), 53, '27.986 -> 28, + 25')
  t.equal(netFor(1999), 1946)
  t.equal(feeFor(1250), 43, '17.5 rounds half up to 18')
  t.equal(feeFor(1249), 42, '17.486 -> 17')
  t.equal(feeFor(10_000), 165)
  t.equal(feeFor(10), 10, 'capped: net is never negative')
  t.equal(netFor(10), 0)
  t.equal(feeFor(0), 0)
  t.equal(feeFor(1_000_000_000_000), 14_000_000_025, 'largest amount, exact')
  const bad: number[] = []
  for (let amount = 0; amount < 200_000; amount += 7) {
    const fee = feeFor(amount)
    // Reference: the same rule in exact rational arithmetic (BigInt), half up.
    const exact = Number((BigInt(amount) * 140n * 2n + 10_000n) / 20_000n) + 25
    if (fee !== Math.min(amount, exact)) bad.push(amount)
  }
  t.same(bad, [], 'matches the exact half-up rule on 28,572 amounts')
  t.throws(() => feeFor(1.5), RangeError)
  t.throws(() => feeFor(-1), RangeError)
})

t.test('currencies: active ISO 4217 codes, case-insensitive, stored upper case', async (t) => {
  t.equal(normaliseCurrency('eur'), 'EUR')
  t.equal(normaliseCurrency('JPY'), 'JPY')
  t.equal(normaliseCurrency('XXX'), undefined)
  t.equal(normaliseCurrency('EURO'), undefined)
})

t.test('lognormal latency matches its median and p99', async (t) => {
  const random = seededRandom(42)
  const samples = Array.from({ length: 20_000 }, () => lognormalMs(random, 20, 200, 60_000)).sort((a, b) => a - b)
  const median = samples[samples.length / 2]!
  const p99 = samples[Math.floor(samples.length * 0.99)]!
  t.ok(median > 18 && median < 22, `median ${median} ~ 20`)
  t.ok(p99 > 170 && p99 < 235, `p99 ${p99} ~ 200`)
  t.equal(lognormalMs(random, 50, 50, 60_000), 50, 'p99 == median is a constant')
  t.equal(lognormalMs(random, 0, 0, 60_000), 0, 'median 0 is no latency')
  t.equal(lognormalMs(random, 100, 100_000, 500) <= 500, true, 'capped')
})

t.test('webhook retry backoff is exponential, capped and jittered within 20 %', async (t) => {
  const limits = { ...defaultPspLimits, webhookRetryBaseMs: 100, webhookRetryMaxMs: 1_000 }
  const low = () => 0
  const high = () => 0.999999
  t.equal(retryDelayMs(limits, 1, low), 80)
  t.equal(retryDelayMs(limits, 2, low), 160)
  t.equal(retryDelayMs(limits, 3, low), 320)
  t.equal(retryDelayMs(limits, 4, high), 960, '800, plus 20 %')
  t.equal(retryDelayMs(limits, 10, low), 800, 'capped at 1000, minus 20 %')
  t.equal(retryDelayMs(limits, 10, high), 1_200)
})

t.test('outcome rules by payment method token', async (t) => {
  t.same(ruleFor('pm_card_visa'), { outcome: { kind: 'succeeded' } })
  t.same(ruleFor('pm_card_mastercard'), { outcome: { kind: 'succeeded' } })
  t.match(ruleFor('pm_card_declined'), { outcome: { kind: 'failed', failure: { code: 'card_declined' } } })
  t.match(ruleFor('pm_card_insufficient_funds'), { outcome: { kind: 'failed', failure: { code: 'insufficient_funds' } } })
  t.match(ruleFor('pm_card_async'), { outcome: { kind: 'async', final: { kind: 'succeeded' } } })
  t.match(ruleFor('pm_card_async_declined'), { outcome: { kind: 'async', final: { kind: 'failed', failure: { code: 'card_declined' } } } })
  t.match(ruleFor('pm_card_requires_action'), { outcome: { kind: 'requires_action' } })
  t.match(ruleFor('pm_card_5xx_once'), { outcome: { kind: 'succeeded' }, fault: 'error_5xx_once' })
  t.match(ruleFor('pm_card_timeout_after_charge'), { outcome: { kind: 'succeeded' }, fault: 'timeout_after_charge' })
  t.equal(ruleFor('pm_card_unknown'), undefined)
  t.match(ruleFor('pm_card_refund_async'), { outcome: { kind: 'succeeded' }, refund: { outcome: 'async_succeeded' } })
  t.match(ruleFor('pm_card_refund_timeout'), { outcome: { kind: 'succeeded' }, refund: { outcome: 'succeeded', fault: 'timeout_after_refund' } })
  t.match(ruleFor('pm_card_capture_5xx_once'), { outcome: { kind: 'succeeded' }, capture: { fault: 'error_5xx_once' } })
  t.match(ruleFor('pm_card_authorization_expires'), { outcome: { kind: 'succeeded' }, capture: { authorizationWindowMs: 2_000 } })
  t.equal(knownPaymentMethods.length, 17, 'nine charge outcomes, five refund behaviours, three capture behaviours')
})

t.test('configuration: env, flags, runtime patches', async (t) => {
  const env = { PSP_DATA_DIR: '/tmp/x', PSP_SECRET_KEY: 'sk_test_0123456789abcdef', PSP_WEBHOOK_SECRET: 'whsec_0123456789abcdef' }
  const config = loadPspConfig({ ...env, PSP_LATENCY_MEDIAN_MS: '20', PSP_LATENCY_P99_MS: '200', PSP_ERROR_5XX_RATE: '0.1', PSP_WEBHOOK_BASE_URL: 'http://127.0.0.1:9/' })
  t.equal(config.port, 7090)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.runtime.latencyMedianMs, 20)
  t.equal(config.runtime.error5xxRate, 0.1)
  t.equal(config.runtime.webhookBaseUrl, 'http://127.0.0.1:9', 'trailing slash removed')
  t.same(flagsToEnv(['--latency-median-ms=5', '--error-5xx-rate', '0.5', '--port', '0']),
    { PSP_LATENCY_MEDIAN_MS: '5', PSP_ERROR_5XX_RATE: '0.5', PSP_PORT: '0' })
  t.equal(loadPspConfig({ ...env, ...flagsToEnv(['--webhook-attempts-max', '3']) }).limits.webhookAttemptsMax, 3)
  t.throws(() => flagsToEnv(['--port']), { code: 'config_invalid' })
  t.throws(() => loadPspConfig({ ...env, PSP_SECRET_KEY: '' }), { code: 'config_invalid' })
  t.throws(() => loadPspConfig({ ...env, PSP_SECRET_KEY: 'short' }), { code: 'config_invalid' })
  t.throws(() => loadPspConfig({ ...env, PSP_ERROR_5XX_RATE: '2' }), /PSP_ERROR_5XX_RATE/)
  t.throws(() => loadPspConfig({ ...env, PSP_PORT: 'x' }), /PSP_PORT/)

  t.same(parseRuntimePatch({ rateLimitRate: 0.5, seed: 7 }, defaultPspLimits), { rateLimitRate: 0.5, seed: 7 })
  const refusal = (input: unknown): PspError => {
    try {
      parseRuntimePatch(input, defaultPspLimits)
    } catch (error) {
      return error as PspError
    }
    throw new Error('accepted')
  }
  t.match(refusal({ nope: 1 }), { code: 'parameter_unknown', param: 'nope' })
  t.match(refusal({ error5xxRate: -0.1 }), { code: 'parameter_invalid', param: 'error5xxRate' })
  t.match(refusal({ latencyMedianMs: 1.5 }), { code: 'parameter_invalid', param: 'latencyMedianMs' })
  t.match(refusal({ latencyMedianMs: 60_001 }), { code: 'parameter_invalid' })
  t.match(refusal({ webhookBaseUrl: 'ftp://x' }), { code: 'parameter_invalid' })
  t.match(refusal([]), { code: 'invalid_json' })
  t.equal(applyRuntimePatch(defaultRuntimeConfig, { latencyMedianMs: 5 }).latencyP99Ms, 5, 'the median alone drags the p99 along')
  t.throws(() => applyRuntimePatch(defaultRuntimeConfig, { latencyMedianMs: 50, latencyP99Ms: 10 }), /latencyP99Ms/)
})

t.test('limits hold together; report dates are real dates', async (t) => {
  t.doesNotThrow(() => assertPspLimits(defaultPspLimits))
  t.throws(() => assertPspLimits({ ...defaultPspLimits, writeQueueMax: 1 }))
  t.throws(() => assertPspLimits({ ...defaultPspLimits, webhookRetryBaseMs: 10, webhookRetryMaxMs: 5 }))
  t.ok(isReportDate('2025-02-28'))
  t.notOk(isReportDate('2025-02-30'))
  t.notOk(isReportDate('2025-2-3'))
  t.notOk(isReportDate('../x'))
})
