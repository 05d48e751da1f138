// The operators' web console (issue #18): server-rendered pages over Postgres (as ringpay_console),
// the nodes' internal API (as the `console` service), the PSP (processor/psp/), the DLQ (as the
// `dlq` Kafka principal), Prometheus and the reconciler's admin trigger. On 127.0.0.1, reached
// through nginx's console listener (TLS).
//
// Env: CONSOLE_PORT, DATABASE_URL, RINGPAY_INTERNAL_URL, RINGPAY_INTERNAL_TOKEN, PSP_BASE_URL,
// PSP_SECRET_KEY, KAFKA_BROKERS (+ KAFKA_SASL_*, KAFKA_TLS_CA_FILE); optional CONSOLE_HOST
// (default 127.0.0.1), RINGPAY_EVENTS_TOPIC, RINGPAY_DLQ_TOPIC, PROMETHEUS_URL, RECONCILER_URL with
// RECONCILER_ADMIN_TOKEN, RINGPAY_TRUSTED_PROXIES (default loopback), NODE_EXTRA_CA_CERTS (the
// internal listener's CA), RINGPAY_TRACING=1 with RINGPAY_TRACES_DIR (a timeline shows the payment's trace).

import { createServer } from 'node:http'
import pg from 'pg'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { createKafkaProducer, createKafkaTopicReader, kafkaSaslFromEnv, parseBrokerList } from '../lib/kafka-event-bus.ts'
import { createLogger } from '../lib/log.ts'
import { serviceEnv } from '../lib/service-env.ts'
import { tracesDirEnv, tracingEnabled } from '../lib/tracing.ts'
import { NodeClient } from '../processor/node-client.ts'
import { PspClient } from '../processor/psp/psp-client.ts'
import type { ConsoleContext } from './context.ts'
import { kafkaDeadLetterStore } from './dead-letters.ts'
import { consoleLimits as limits } from './limits.ts'
import { handle } from './server.ts'
import { stopOnSignals } from '../lib/service-shutdown.ts'

const log = createLogger('console')
const { required, port: portFrom, trustedProxies: trustedProxiesFrom, fail } = serviceEnv(log)

const port = portFrom('CONSOLE_PORT')
const host = process.env.CONSOLE_HOST ?? '127.0.0.1'
const brokers = parseBrokerList(required('KAFKA_BROKERS')) ?? fail('KAFKA_BROKERS', 'KAFKA_BROKERS must be host:port[,host:port…]')

const pool = new pg.Pool({
  connectionString: required('DATABASE_URL'),
  max: limits.poolConnectionsMax,
  statement_timeout: limits.statementTimeoutMs,
  options: '-c TimeZone=UTC -c jit=off',
})
pool.on('error', (error) => log.warn({ err: error }, 'postgres idle client error'))

const node = new NodeClient({
  internalUrl: required('RINGPAY_INTERNAL_URL'),
  internalToken: required('RINGPAY_INTERNAL_TOKEN'),
  connectTimeoutMs: limits.upstreamConnectTimeoutMs,
  headersTimeoutMs: limits.upstreamHeadersTimeoutMs,
  bodyTimeoutMs: limits.upstreamBodyTimeoutMs,
  connectionsMax: limits.upstreamConnectionsMax,
  // The console never batches (it names no node): these only bound the unused batcher.
  transitionsPerBatchMax: 1,
  transitionsQueuedPerNodeMax: 1,
})
const psp = new PspClient({
  baseUrl: required('PSP_BASE_URL'),
  secretKey: required('PSP_SECRET_KEY'),
  connectTimeoutMs: limits.upstreamConnectTimeoutMs,
  headersTimeoutMs: limits.upstreamHeadersTimeoutMs,
  bodyTimeoutMs: limits.upstreamBodyTimeoutMs,
  connectionsMax: limits.upstreamConnectionsMax,
})
const kafkaLog = createLogger('console-kafka')
kafkaLog.level = 'warn'
const busOptions = { brokers, sasl: kafkaSaslFromEnv(process.env), clientId: 'ringpay-console', connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: kafkaLog }
const producer = createKafkaProducer(busOptions)

const reconcilerUrl = process.env.RECONCILER_URL
const ctx: ConsoleContext = {
  pool,
  node,
  psp,
  deadLetters: kafkaDeadLetterStore(createKafkaTopicReader(busOptions), producer, {
    events: process.env.RINGPAY_EVENTS_TOPIC ?? 'payments.events',
    dlq: process.env.RINGPAY_DLQ_TOPIC ?? 'payments.dlq',
  }),
  prometheusUrl: process.env.PROMETHEUS_URL,
  reconciler: reconcilerUrl === undefined || reconcilerUrl === '' ? undefined : { url: reconcilerUrl, token: required('RECONCILER_ADMIN_TOKEN') },
  trustedProxies: trustedProxiesFrom(),
  tracesDir: tracingEnabled(process.env) ? process.env[tracesDirEnv] : undefined,
  log,
}

const registry = new Registry()
collectDefaultMetrics({ register: registry })
const requestDuration = new Histogram({
  name: 'ringpay_console_request_duration_seconds',
  help: 'Console requests by route and status',
  labelNames: ['route', 'status'] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30],
  registers: [registry],
})
const loginFailures = new Counter({ name: 'ringpay_console_login_failures_total', help: 'Refused console sign-ins by code (login_failed, login_locked)', labelNames: ['code'] as const, registers: [registry] })

const server = createServer({ requestTimeout: limits.requestDeadlineMs }, (req, res) => {
  handle(ctx, {
    registry,
    onRequest: (route, status, seconds) => requestDuration.observe({ route, status: String(status) }, seconds),
    onLoginFailure: (code) => loginFailures.inc({ code }),
  }, req, res).catch((error: unknown) => {
    // handle() answers every failure itself: this is a bug.
    log.fatal({ err: error }, 'console handler threw')
    process.exit(70)
  })
})
server.listen(port, host, () => log.info({ host, port }, 'console listening'))

stopOnSignals(server, limits.shutdownDrainMs, { release: () => Promise.allSettled([pool.end(), node.close(), psp.close(), producer.close()]) })
