import { AssertionError } from 'node:assert'
import t from 'tap'
import { loadRelayConfig } from '../config.ts'
import { assertRelayLimits, defaultRelayLimits } from '../limits.ts'

t.test('the defaults hold together', async (t) => {
  t.doesNotThrow(() => assertRelayLimits(defaultRelayLimits))
})

t.test('limits that would break a guarantee are refused', async (t) => {
  for (const bad of [
    { publishInFlightBatchesMax: 2 },
    { publishBatchEventsMax: 0 },
    { retryBackoffBaseMs: 10_000, retryBackoffMaxMs: 100 },
    { backlogResumeEventsMax: defaultRelayLimits.backlogEventsMax },
    { stopDrainMsMax: 10_000, stopWorkerMsMax: 10_000 },
    { publishPacingMs: 5_000 },
    { publishPacingMs: -1 },
    { publishLightPacingMs: defaultRelayLimits.publishPacingMs + 1 },
    { publishLightPacingMs: -1 },
    { changelogScanEntriesMax: 0 },
  ]) {
    t.throws(() => assertRelayLimits({ ...defaultRelayLimits, ...bad }), AssertionError, JSON.stringify(bad))
  }
})

t.test('no KAFKA_BROKERS, no relay', async (t) => {
  t.equal(loadRelayConfig({}), undefined)
  t.equal(loadRelayConfig({ KAFKA_BROKERS: ' , ' }), undefined)
})

t.test('configuration from the environment', async (t) => {
  const config = loadRelayConfig({ KAFKA_BROKERS: '127.0.0.1:9092, kafka-2:9093', RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '1000' })!
  t.same(config.brokers, ['127.0.0.1:9092', 'kafka-2:9093'])
  t.equal(config.topic, 'payments.events')
  t.equal(config.limits.backlogEventsMax, 1000)
  t.equal(config.limits.backlogResumeEventsMax, 900)
  t.equal(loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_EVENTS_TOPIC: 'other.events' })!.topic, 'other.events')
  t.equal(config.limits.publishLightPacingMs, defaultRelayLimits.publishLightPacingMs)
  t.equal(loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_PACING_MS: '0' })!.limits.publishLightPacingMs, 0, 'no pacing turns light pacing off too')
  t.equal(loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_LIGHT_PACING_MS: '3' })!.limits.publishLightPacingMs, 3)
  t.throws(() => loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_PACING_MS: '5', RINGPAY_RELAY_LIGHT_PACING_MS: '6' }), { code: 'config_invalid' })
  t.equal(config.limits.publishProjectionOnlyLingerMs, defaultRelayLimits.publishProjectionOnlyLingerMs)
  t.equal(loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_PROJECTION_LINGER_MS: '0' })!.limits.publishProjectionOnlyLingerMs, 0)
  t.throws(() => loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_PROJECTION_LINGER_MS: '5000' }), { code: 'config_invalid' })
  t.throws(() => loadRelayConfig({ KAFKA_BROKERS: 'no-port' }), { code: 'config_invalid' })
  t.throws(() => loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_RELAY_BACKLOG_EVENTS_MAX: 'lots' }), { code: 'config_invalid' })
  t.throws(() => loadRelayConfig({ KAFKA_BROKERS: 'k:1', RINGPAY_EVENTS_TOPIC: 'bad topic' }), { code: 'config_invalid' })
})
