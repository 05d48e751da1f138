// A processor process: consumes the nodes' change events, projects them into Postgres, charges
// the PSP once per payment, tells the owning node, dead-letters what it cannot finish, and runs
// the watchdog. Any number of processors can run in one consumer group.
//
// Env: DATABASE_URL, KAFKA_BROKERS, RINGPAY_INTERNAL_URL (nginx's internal listener),
// RINGPAY_INTERNAL_TOKEN (the processor service's own internal API token), PSP_BASE_URL,
// PSP_SECRET_KEY (the sandbox PSP), RINGPAY_FIELD_KEYS_FILE, RINGPAY_EVENT_KEYS_FILE (every node's event-signing
// key); KAFKA_SASL_USERNAME/PASSWORD/MECHANISM (its Kafka login); optional PROCESSOR_ID, PROCESSOR_ADMIN_PORT (metrics), RINGPAY_EVENTS_TOPIC,
// RINGPAY_DLQ_TOPIC, PROCESSOR_GROUP_ID, PROCESSOR_WATCHDOG_STALE_AFTER_MS,
// PROCESSOR_WATCHDOG_INTERVAL_MS, PROCESSOR_FETCH_PACING_MS, PROCESSOR_ACTION_EXPIRY_MS,
// PROCESSOR_PENDING_EXPIRY_MS; issue #16: NIMBUS_BASE_URL, NIMBUS_API_KEY (the
// Nimbus PSP, all three or none), RINGPAY_PSP_ROUTING_FILE (processor/psp/routing.ts; none: every
// payment to the sandbox PSP).

import { createServer } from 'node:http'
import pg from 'pg'
import { createKafkaConsumer, createKafkaProducer, kafkaSaslFromEnv, parseBrokerList } from '../lib/kafka-event-bus.ts'
import { keyRingFromEnv } from '../lib/field-crypto.ts'
import { eventVerifierFromEnv } from '../lib/event-signing.ts'
import { consumerLagGauge } from '../lib/consumer-lag.ts'
import { createLogger } from '../lib/log.ts'
import { startTracing } from '../lib/tracing.ts'
import { handleMessages } from './batch-handler.ts'
import type { ChargeFlowDeps } from './charge-flow.ts'
import { DeadLetterPublisher } from './dead-letters.ts'
import { AttemptLog } from './attempt-log.ts'
import { processorLimits as limits } from './limits.ts'
import { createProcessorMetrics } from './metrics.ts'
import { NodeClient } from './node-client.ts'
import { KeyedQueue } from './key-queue.ts'
import { flagPayment, projectEvents } from './projection.ts'
import { PaymentMethodColumnSealer } from './sealed-columns.ts'
import { ProjectionWriter } from './projection-writer.ts'
import { defaultBreakerLimits, breakerStateValue } from './psp/breaker.ts'
import { NimbusClient } from './psp/nimbus-client.ts'
import { PspClient } from './psp/psp-client.ts'
import { GuardedProvider, PspRegistry, type ProviderHooks } from './psp/registry.ts'
import { loadRoutingConfig, RoutingConfigError } from './psp/routing.ts'
import { Semaphore } from './semaphore.ts'
import { startWatchdog } from './watchdog.ts'

function required (name: string): string {
  const value = process.env[name]
  if (!value) {
    console.error(`${name} is required`)
    process.exit(2)
  }
  return value
}

function integer (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`${name} must be a non-negative integer`)
    process.exit(2)
  }
  return value
}

const processorId = process.env.PROCESSOR_ID ?? `p-${process.pid}`
const log = createLogger('processor', { processor_id: processorId })
// Issue #18: RINGPAY_TRACING=1 turns tracing on (the SDK is loaded only then).
const tracer = await startTracing('processor')
const brokers = parseBrokerList(required('KAFKA_BROKERS'))!
const eventsTopic = process.env.RINGPAY_EVENTS_TOPIC ?? 'payments.events'
const dlqTopic = process.env.RINGPAY_DLQ_TOPIC ?? 'payments.dlq'

// The key ring opens the sealed fields of change events (the PSP call needs the token) and seals
// what goes to Postgres. No keys, no processor.
const keyRing = keyRingFromEnv(process.env)
log.info({ active_key_id: keyRing.activeKeyId }, 'field key ring loaded')
// Every node's change-event signing key (lib/event-signing.ts): only events a node signed are
// projected or acted on. No keys, no processor (it would refuse every event).
const verifier = eventVerifierFromEnv(process.env)
log.info({ event_keys: verifier.keyIds }, 'event signing keys loaded')
const paymentMethods = new PaymentMethodColumnSealer(keyRing, limits.sealedPaymentMethodsCachedMax)

const pool = new pg.Pool({
  connectionString: required('DATABASE_URL'),
  max: limits.poolConnectionsMax,
  statement_timeout: limits.statementTimeoutMs,
  connectionTimeoutMillis: 5_000,
  idleTimeoutMillis: 30_000,
})
// A pool error (Postgres restarting) is reported per query; the idle-client error must not crash us.
pool.on('error', (error) => log.warn({ err: error }, 'postgres idle client error'))

const pspSlots = new Semaphore(limits.pspCallsInFlightMax)
const keys = new KeyedQueue()
const metrics = createProcessorMetrics(processorId, { pspInFlight: () => pspSlots.active, paymentsInFlight: () => keys.keys })
const node = new NodeClient({
  internalUrl: required('RINGPAY_INTERNAL_URL'),
  internalToken: required('RINGPAY_INTERNAL_TOKEN'),
  connectTimeoutMs: limits.nodeConnectTimeoutMs,
  headersTimeoutMs: limits.nodeHeadersTimeoutMs,
  bodyTimeoutMs: limits.nodeBodyTimeoutMs,
  connectionsMax: limits.nodeConnectionsMax,
  transitionsPerBatchMax: limits.nodeTransitionsPerBatchMax,
  transitionsQueuedPerNodeMax: limits.nodeTransitionsQueuedPerNodeMax,
})
const psp = new PspClient({
  baseUrl: required('PSP_BASE_URL'),
  secretKey: required('PSP_SECRET_KEY'),
  connectTimeoutMs: limits.pspConnectTimeoutMs,
  headersTimeoutMs: limits.pspHeadersTimeoutMs,
  bodyTimeoutMs: limits.pspBodyTimeoutMs,
  connectionsMax: limits.pspConnectionsMax,
})
// Issue #16: every PSP this processor may call, each behind its breaker; the sandbox first (the
// fallback: payments from before routing were charged there).
const pspHooks: ProviderHooks = {
  onCall: (provider, result, latencyMs) => metrics.pspProviderCalls.observe({ provider, result }, latencyMs / 1000),
  onBreakerState: (provider, state) => {
    metrics.pspBreakerState.set({ provider }, breakerStateValue[state])
    log.warn({ provider, state }, 'psp circuit breaker changed state')
  },
}
const providers = [new GuardedProvider(psp, defaultBreakerLimits, pspHooks)]
if (process.env.NIMBUS_BASE_URL) {
  providers.push(new GuardedProvider(new NimbusClient({
    baseUrl: process.env.NIMBUS_BASE_URL,
    apiKey: required('NIMBUS_API_KEY'),
    connectTimeoutMs: limits.pspConnectTimeoutMs,
    headersTimeoutMs: limits.pspHeadersTimeoutMs,
    bodyTimeoutMs: limits.pspBodyTimeoutMs,
    connectionsMax: limits.pspConnectionsMax,
  }), defaultBreakerLimits, pspHooks))
}
for (const provider of providers) metrics.pspBreakerState.set({ provider: provider.name }, 0)
let psps: PspRegistry
try {
  const routingFile = process.env.RINGPAY_PSP_ROUTING_FILE
  psps = new PspRegistry(providers, routingFile ? loadRoutingConfig(routingFile, new Set(providers.map((p) => p.name))) : undefined)
} catch (error) {
  if (!(error instanceof RoutingConfigError)) throw error
  log.fatal({ err: error }, 'invalid PSP routing config')
  process.exit(78)
}
log.info({ providers: psps.names, routed: psps.router !== undefined }, 'psp providers ready')
const attempts = new AttemptLog(pool, keyRing, {
  rowsMax: limits.attemptLogRowsMax,
  flushIntervalMs: limits.attemptLogFlushIntervalMs,
  backoffBaseDelayMs: limits.projectionBackoffBaseDelayMs,
  backoffDelayMsMax: limits.projectionBackoffDelayMsMax,
}, log)
const flow: ChargeFlowDeps = {
  node,
  psp: psps.get(undefined),
  psps,
  onRoute: (provider, reason) => metrics.pspRouted.inc({ provider, reason }),
  attempts,
  pspSlots,
  log,
  flag: async (payment, reason) => {
    metrics.flagged.inc()
    await flagPayment(pool, payment, reason)
  },
  onPspCall: (outcome, latencyMs) => metrics.pspCalls.observe({ outcome }, latencyMs / 1000),
}
const busOptions = { brokers, sasl: kafkaSaslFromEnv(process.env), clientId: processorId, connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log }
const producer = createKafkaProducer(busOptions)
const deadLetters = new DeadLetterPublisher(producer, dlqTopic)
const projection = new ProjectionWriter((events) => projectEvents(pool, keyRing, paymentMethods, events), {
  eventsPerStatementMax: limits.projectionEventsPerStatementMax,
  backoffBaseDelayMs: limits.projectionBackoffBaseDelayMs,
  backoffDelayMsMax: limits.projectionBackoffDelayMsMax,
}, log, {
  onWritten: (events, durationMs) => {
    metrics.projectionDuration.observe(durationMs / 1000)
    metrics.projectionEvents.observe(events)
  },
  onRetry: () => metrics.projectionRetries.inc(),
})
const groupId = process.env.PROCESSOR_GROUP_ID ?? 'ringpay-processor'
const consumer = createKafkaConsumer({
  ...busOptions,
  groupId,
  sessionTimeoutMs: limits.sessionTimeoutMs,
  fetchPartitionBytesMax: limits.fetchPartitionBytesMax,
  fetchBytesMax: limits.fetchBytesMax,
  fetchWaitMsMax: limits.fetchWaitMsMax,
})

const admin = createServer((req, res) => {
  if (req.url === '/metrics') {
    metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': metrics.registry.contentType })
      res.end(text)
    }, (error: unknown) => {
      res.writeHead(500)
      res.end(String(error))
    })
    return
  }
  if (req.url === '/healthz' || req.url === '/readyz') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ status: 'ok', processor_id: processorId }))
    return
  }
  res.writeHead(404)
  res.end()
})
admin.listen(integer('PROCESSOR_ADMIN_PORT', 0), '127.0.0.1', () => {
  const address = admin.address()
  log.info({ admin_port: typeof address === 'object' && address ? address.port : undefined }, 'processor admin listening')
})

const stopWatchdog = startWatchdog(pool, flow, metrics, log, {
  intervalMs: integer('PROCESSOR_WATCHDOG_INTERVAL_MS', limits.watchdogIntervalMs),
  staleAfterMs: integer('PROCESSOR_WATCHDOG_STALE_AFTER_MS', limits.watchdogStaleAfterMs),
  batchMax: limits.watchdogBatchMax,
  actionExpiryMs: integer('PROCESSOR_ACTION_EXPIRY_MS', limits.actionExpiryMs),
  captureExpiryMs: integer('PROCESSOR_CAPTURE_EXPIRY_MS', limits.captureExpiryMs),
  pendingExpiryMs: integer('PROCESSOR_PENDING_EXPIRY_MS', limits.pendingExpiryMs),
})

await consumer.runPipelined({
  topics: [eventsTopic],
  fromBeginning: true,
  partitionsConsumedConcurrently: limits.partitionsConsumedConcurrently,
  messagesInFlightMax: limits.eventsInFlightMax,
  offsetCommitIntervalMs: limits.offsetCommitIntervalMs,
  closeDrainTimeoutMs: limits.closeDrainTimeoutMs,
  fetchPacingMs: integer('PROCESSOR_FETCH_PACING_MS', limits.fetchPacingMs),
  onMessages: (messages) => handleMessages({ flow, projection, keys, deadLetters, metrics, log, sealer: keyRing, verifier }, messages),
  lag: consumerLagGauge(metrics.registry, groupId),
})
log.info({ topic: eventsTopic, dlq: dlqTopic }, 'processor consuming')

let stopping = false
const stop = async (): Promise<void> => {
  if (stopping) return
  stopping = true
  log.info('processor stopping')
  await consumer.close()
  await stopWatchdog()
  await attempts.flush()
  await Promise.allSettled([producer.close(), node.close(), psps.close(), pool.end(), tracer?.shutdown()])
  admin.close()
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
process.on('unhandledRejection', (error) => {
  log.fatal({ err: error }, 'unhandled rejection')
  process.exit(70)
})
