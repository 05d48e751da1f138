// The notifier: merchants' outgoing webhooks (issue #15). Consumes payments.events in its own
// consumer group (ringpay-notifier), turns every payment and refund change of a merchant with
// endpoints into a merchant event and pending deliveries in Postgres (consumer.ts), delivers them
// signed, in version order per payment and endpoint, with retries (dispatcher.ts), and serves the
// merchant API for endpoints and events (routes.ts) and /metrics on one port, behind nginx.
//
// Env: DATABASE_URL (role ringpay_notifier), KAFKA_BROKERS, RINGPAY_FIELD_KEYS_FILE (opens the
// events' sealed fields; seals endpoint secrets and stored event bodies), RINGPAY_API_KEYS_FILE,
// NOTIFIER_PORT; optional NOTIFIER_HOST (127.0.0.1), RINGPAY_EVENTS_TOPIC (payments.events),
// NOTIFIER_GROUP_ID (ringpay-notifier), RINGPAY_TRUSTED_PROXIES, RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK
// (=1: the local stack's dev mode, loopback and http endpoints allowed; never in production), and
// the limits of limits.ts limitEnvNames (NOTIFIER_RETRY_BASE_DELAY_MS, …).

import { createServer } from 'node:http'
import pg from 'pg'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { consumerLagGauge } from '../lib/consumer-lag.ts'
import { keyRingFromEnv, ReloadingKeyRing } from '../lib/field-crypto.ts'
import { createKafkaConsumer, kafkaSaslFromEnv, parseBrokerList } from '../lib/kafka-event-bus.ts'
import { eventVerifierFromEnv } from '../lib/event-signing.ts'
import { createLogger } from '../lib/log.ts'
import { ApiKeyRegistry } from '../payment-svc/api-keys.ts'
import { createApiKeysReloader } from '../payment-svc/api-keys-reloader.ts'
import { FailedKeyLimiter } from '../payment-svc/failed-key-limiter.ts'
import { defaultLimits as nodeLimits } from '../payment-svc/limits.ts'
import { handleMessages } from './consumer.ts'
import { EventWriter } from './event-writer.ts'
import { Dispatcher } from './dispatcher.ts'
import { limitsFromEnv } from './limits.ts'
import { MerchantFilter } from './merchant-filter.ts'
import { handle, type NotifierApiContext } from './routes.ts'
import { Sender } from './sender.ts'
import { queueStats, recordEvents } from './store.ts'
import { configErrorExitCode, serviceEnv } from '../lib/service-env.ts'

const log = createLogger('notifier')

const { required, port: portFrom, trustedProxies: trustedProxiesFrom } = serviceEnv(log)

let limits: ReturnType<typeof limitsFromEnv>
try {
  limits = limitsFromEnv(process.env)
} catch (error) {
  log.fatal({ err: error }, 'bad notifier limits')
  process.exit(configErrorExitCode)
}
const port = portFrom('NOTIFIER_PORT')
const host = process.env.NOTIFIER_HOST ?? '127.0.0.1'
const brokers = parseBrokerList(required('KAFKA_BROKERS'))!
const eventsTopic = process.env.RINGPAY_EVENTS_TOPIC ?? 'payments.events'
const groupId = process.env.NOTIFIER_GROUP_ID ?? 'ringpay-notifier'
const trustedProxies = trustedProxiesFrom()
const policy = { allowLoopback: process.env.RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK === '1' }
if (policy.allowLoopback) log.warn('dev mode: loopback and http webhook endpoints are allowed (RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK=1)')

// Re-read when an event is sealed under a key added after the start (a rotation): an event the
// notifier cannot open would make no merchant event.
const keyRing = new ReloadingKeyRing(() => keyRingFromEnv(process.env), limits.keyRingReloadIntervalMsMin)
log.info({ active_key_id: keyRing.activeKeyId }, 'field key ring loaded')

const pool = new pg.Pool({
  connectionString: required('DATABASE_URL'),
  max: limits.poolConnectionsMax,
  statement_timeout: limits.statementTimeoutMs,
  connectionTimeoutMillis: 5_000,
  options: '-c TimeZone=UTC -c jit=off',
})
pool.on('error', (error) => log.warn({ err: error }, 'postgres idle client error'))

const registry = new Registry()
collectDefaultMetrics({ register: registry })
const requestDuration = new Histogram({
  name: 'ringpay_notifier_request_duration_seconds', help: 'Merchant API requests by route and status',
  labelNames: ['route', 'status'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5], registers: [registry],
})
const authFailures = new Counter({ name: 'ringpay_notifier_auth_failures_total', help: 'Requests with an unknown API key', registers: [registry] })
const attemptsTotal = new Counter({
  name: 'ringpay_notifier_delivery_attempts_total', help: 'Delivery attempts by outcome (succeeded, retry, failed for good)',
  labelNames: ['outcome'] as const, registers: [registry],
})
const attemptDuration = new Histogram({
  name: 'ringpay_notifier_delivery_attempt_duration_seconds', help: 'One delivery attempt, request to answer',
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
})
const disabledTotal = new Counter({ name: 'ringpay_notifier_endpoints_disabled_total', help: 'Endpoints disabled for failing', registers: [registry] })
const eventsConsumed = new Counter({ name: 'ringpay_notifier_change_events_consumed_total', help: 'Change events read from Kafka', registers: [registry] })
const eventsMade = new Counter({ name: 'ringpay_notifier_merchant_events_total', help: 'Merchant events written to Postgres (of merchants with endpoints, or not yet known to have none)', registers: [registry] })
const poison = new Counter({ name: 'ringpay_notifier_unreadable_events_total', help: 'Change events that could not be decoded (skipped), and deliveries whose secret or body did not open', registers: [registry] })
const storeRetries = new Counter({ name: 'ringpay_notifier_store_retries_total', help: 'Postgres writes of consumed events retried', registers: [registry] })
const loopErrors = new Counter({ name: 'ringpay_notifier_dispatch_errors_total', help: 'Dispatch loop turns that failed (Postgres)', registers: [registry] })

const sender = new Sender({
  policy,
  deliveryTimeoutMs: limits.deliveryTimeoutMs,
  responseBytesMax: limits.responseBytesMax,
  responseErrorCharsMax: limits.responseErrorCharsMax,
  urlCharsMax: limits.urlCharsMax,
  userAgent: 'Ringpay-Webhooks/1.0',
})
const dispatcher = new Dispatcher({
  pool,
  sealer: keyRing,
  send: (url, eventId, body, secrets) => sender.send(url, eventId, body, secrets),
  limits,
  log,
  hooks: {
    onAttempt: (outcome, _status, latencyMs) => {
      attemptsTotal.inc({ outcome })
      attemptDuration.observe(latencyMs / 1000)
    },
    onDisabled: () => disabledTotal.inc(),
    onLoopError: () => loopErrors.inc(),
    onUnopenable: () => poison.inc(),
  },
})
const inFlightGauge = new Gauge({ name: 'ringpay_notifier_deliveries_in_flight', help: 'Delivery attempts in flight', registers: [registry], collect () { inFlightGauge.set(dispatcher.inFlight) } })
// One query serves both queue gauges of a scrape (each gauge's collect asks; the second gets the first's answer).
let queueStatsAt = Number.NEGATIVE_INFINITY
let queueStatsPromise: ReturnType<typeof queueStats> | undefined
function currentQueueStats (): ReturnType<typeof queueStats> {
  if (queueStatsPromise === undefined || performance.now() - queueStatsAt > 1_000) {
    queueStatsAt = performance.now()
    queueStatsPromise = queueStats(pool)
  }
  return queueStatsPromise
}
const pendingGauge = new Gauge({
  name: 'ringpay_notifier_deliveries_pending',
  help: 'Deliveries of enabled endpoints not yet succeeded or failed for good',
  registers: [registry],
  async collect () {
    try { pendingGauge.set((await currentQueueStats()).pending) } catch {}
  },
})
const oldestDueGauge = new Gauge({
  name: 'ringpay_notifier_oldest_due_delivery_seconds',
  help: 'How long the oldest due delivery of an enabled endpoint has waited',
  registers: [registry],
  async collect () {
    try { oldestDueGauge.set((await currentQueueStats()).oldestDueAgeS) } catch {}
  },
})

const apiKeys = new ApiKeyRegistry(required('RINGPAY_API_KEYS_FILE'))
const reloader = createApiKeysReloader(apiKeys, log, { retryIntervalMs: limits.apiKeysRetryIntervalMs, pollIntervalMs: limits.apiKeysPollIntervalMs })
await reloader.reload('start')
process.on('SIGHUP', () => { void reloader.reload('signal') })

const merchants = new MerchantFilter(pool, log)
await merchants.refresh()
merchants.start(limits.endpointCacheRefreshIntervalMs)

const ctx: NotifierApiContext = {
  apiKeys,
  failedKeys: new FailedKeyLimiter(nodeLimits),
  trustedProxies,
  limits: { apiKeysRetryIntervalMs: limits.apiKeysRetryIntervalMs, failedKeyAttemptsMax: nodeLimits.failedKeyAttemptsMax, failedKeyWindowMs: nodeLimits.failedKeyWindowMs },
  log,
  pool,
  sealer: keyRing,
  registry,
  notifierLimits: limits,
  policy,
  onRedeliver: () => dispatcher.wake(),
  onEndpointCreated: (merchantId) => merchants.add(merchantId),
  onRequest: (route, status, seconds) => requestDuration.observe({ route, status: String(status) }, seconds),
  onAuthFailure: () => authFailures.inc(),
}

const server = createServer({
  // The whole request, however steadily a client dribbles, as on the nodes; longer keep-alive than
  // nginx's upstream keepalive_timeout (60 s), so nginx always closes first.
  requestTimeout: limits.requestDeadlineMs,
  headersTimeout: limits.requestDeadlineMs,
  connectionsCheckingInterval: limits.requestDeadlineCheckIntervalMs,
  keepAliveTimeout: 65_000,
  maxHeaderSize: 16 * 1024,
}, (req, res) => {
  handle(ctx, req, res).catch((error: unknown) => {
    log.fatal({ err: error }, 'notifier handler threw')
    process.exit(70)
  })
})
server.listen(port, host, () => log.info({ host, port }, 'notifier listening'))

dispatcher.start()

// Every node's change-event signing key (lib/event-signing.ts): events no node signed make no merchant event.
const verifier = eventVerifierFromEnv(process.env)
const eventsRefused = new Counter({
  name: 'ringpay_notifier_events_refused_total',
  help: 'Change events refused as not genuine (no, a wrong or another node\'s MAC; an inconsistent identity): no merchant event made',
  labelNames: ['reason'],
  registers: [registry],
})
const consumer = createKafkaConsumer({
  brokers,
  sasl: kafkaSaslFromEnv(process.env),
  clientId: 'notifier',
  connectionTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
  log,
  groupId,
  sessionTimeoutMs: limits.sessionTimeoutMs,
  fetchPartitionBytesMax: limits.fetchPartitionBytesMax,
  fetchBytesMax: limits.fetchBytesMax,
  fetchWaitMsMax: limits.fetchWaitMsMax,
})
const writer = new EventWriter((events) => recordEvents(pool, keyRing, events, limits.retryWindowMs), {
  eventsPerStatementMax: limits.eventsPerStatementMax,
  retryBaseDelayMs: limits.storeRetryBaseDelayMs,
  retryDelayMsMax: limits.storeRetryDelayMsMax,
}, log, {
  onWritten: (events, deliveries) => {
    eventsMade.inc(events)
    if (deliveries > 0) dispatcher.wake()
  },
  onRetry: () => storeRetries.inc(),
})
await consumer.runPipelined({
  topics: [eventsTopic],
  // A new group reads the topic's history: events of merchants with endpoints published before
  // the notifier first joined are not lost (merchants without endpoints are skipped cheaply).
  fromBeginning: true,
  partitionsConsumedConcurrently: limits.partitionsConsumedConcurrently,
  messagesInFlightMax: limits.messagesInFlightMax,
  offsetCommitIntervalMs: limits.offsetCommitIntervalMs,
  closeDrainTimeoutMs: limits.closeDrainTimeoutMs,
  fetchPacingMs: limits.fetchPacingMs,
  onMessages: (messages) => handleMessages({
    sealer: keyRing,
    verifier,
    onRefused: (code) => eventsRefused.inc({ reason: code }),
    wanted: (merchantId) => merchants.mayHaveEndpoints(merchantId),
    submit: (events) => writer.submit(events),
    log,
    onPoison: () => poison.inc(),
    onConsumed: (consumed) => eventsConsumed.inc(consumed),
  }, messages),
  lag: consumerLagGauge(registry, groupId),
})
log.info({ topic: eventsTopic, group_id: groupId }, 'notifier consuming')

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    reloader.stop()
    merchants.stop()
    server.close()
    setTimeout(() => server.closeAllConnections(), limits.shutdownDrainMs).unref()
    void (async () => {
      await consumer.close()
      await dispatcher.stop(limits.shutdownDrainMs)
      await Promise.allSettled([sender.close(), pool.end()])
      process.exit(0)
    })()
  })
}
process.on('unhandledRejection', (error) => {
  log.fatal({ err: error }, 'unhandled rejection')
  process.exit(70)
})
