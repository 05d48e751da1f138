// The reporting service: a merchant's payments read from Postgres (server.ts), behind nginx's
// public server. Read-only by construction: it logs in as ringpay_reporting, which may only
// SELECT from payments (db/roles.ts).
//
// Env: DATABASE_URL, RINGPAY_API_KEYS_FILE (the nodes' keys file: digests only), REPORTING_PORT;
// optional REPORTING_HOST (default 127.0.0.1), RINGPAY_TRUSTED_PROXIES (default loopback).
// SIGHUP reloads the keys file; an unusable file refuses every key until it is fixed (503
// api_keys_unavailable), as on the nodes.

import { createServer } from 'node:http'
import pg from 'pg'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { createLogger } from '../lib/log.ts'
import { ApiKeyRegistry } from '../payment-svc/api-keys.ts'
import { createApiKeysReloader } from '../payment-svc/api-keys-reloader.ts'
import { FailedKeyLimiter } from '../payment-svc/failed-key-limiter.ts'
import { defaultLimits as nodeLimits } from '../payment-svc/limits.ts'
import { reportingLimits as limits } from './limits.ts'
import { handle, type ReportingContext } from './server.ts'
import { serviceEnv } from '../lib/service-env.ts'
import { stopOnSignals } from '../lib/service-shutdown.ts'

const log = createLogger('reporting')

const { required, port: portFrom, trustedProxies: trustedProxiesFrom } = serviceEnv(log)

const port = portFrom('REPORTING_PORT')
const host = process.env.REPORTING_HOST ?? '127.0.0.1'
const trustedProxies = trustedProxiesFrom()

const pool = new pg.Pool({
  connectionString: required('DATABASE_URL'),
  max: limits.poolConnectionsMax,
  statement_timeout: limits.statementTimeoutMs,
  options: '-c TimeZone=UTC -c jit=off',
})
pool.on('error', (error) => log.warn({ err: error }, 'postgres idle client error'))

const registry = new Registry()
collectDefaultMetrics({ register: registry })
const requestDuration = new Histogram({
  name: 'ringpay_reporting_request_duration_seconds',
  help: 'Reporting requests by route and status',
  labelNames: ['route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
  registers: [registry],
})
const authFailures = new Counter({ name: 'ringpay_reporting_auth_failures_total', help: 'Requests with an unknown API key', registers: [registry] })

const apiKeys = new ApiKeyRegistry(required('RINGPAY_API_KEYS_FILE'))
const apiKeysGauge = new Gauge({ name: 'ringpay_reporting_api_keys', help: 'API keys in force (0 while the keys file is unusable)', registers: [registry], collect () { apiKeysGauge.set(apiKeys.size) } })
const reloader = createApiKeysReloader(apiKeys, log, { retryIntervalMs: limits.apiKeysRetryIntervalMs, pollIntervalMs: limits.apiKeysPollIntervalMs })
await reloader.reload('start')
process.on('SIGHUP', () => { void reloader.reload('signal') })

const ctx: ReportingContext = {
  apiKeys,
  failedKeys: new FailedKeyLimiter(nodeLimits),
  trustedProxies,
  limits: { apiKeysRetryIntervalMs: limits.apiKeysRetryIntervalMs, failedKeyAttemptsMax: nodeLimits.failedKeyAttemptsMax, failedKeyWindowMs: nodeLimits.failedKeyWindowMs },
  log,
  pool,
  registry,
  onRequest: (route, status, seconds) => requestDuration.observe({ route, status: String(status) }, seconds),
  onAuthFailure: () => authFailures.inc(),
}

const server = createServer((req, res) => {
  handle(ctx, req, res).catch((error: unknown) => {
    // handle() answers every expected failure itself: this is a bug.
    log.fatal({ err: error }, 'reporting handler threw')
    process.exit(70)
  })
})
server.listen(port, host, () => log.info({ host, port }, 'reporting listening'))

stopOnSignals(server, limits.shutdownDrainMs, { beforeClose: () => reloader.stop(), release: () => pool.end() })
