// The admin service: the operators' API for merchants and their API keys (server.ts), on
// 127.0.0.1, reached through nginx's internal listener (`/admin/`); the public listener answers
// 404 there. It changes the keys file the nodes read; it holds no merchant key and no operator
// token, only the tokens' SHA-256 digests.
//
// Env: RINGPAY_API_KEYS_FILE (the keys file; its dir must be writable: temp file, lock, audit
// log), RINGPAY_ADMIN_OPERATORS (`<name>:<sha256 hex of the token>,…`), ADMIN_PORT; optional
// ADMIN_HOST (default 127.0.0.1), RINGPAY_TRUSTED_PROXIES (default loopback).

import { createServer } from 'node:http'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { createLogger } from '../lib/log.ts'
import { KeysFile } from './keys-file.ts'
import { adminLimits as limits } from './limits.ts'
import { OperatorsSettingError, parseOperators, type Operator } from './operator-auth.ts'
import { handle, type AdminContext } from './server.ts'
import { configErrorExitCode, serviceEnv } from '../lib/service-env.ts'
import { stopOnSignals } from '../lib/service-shutdown.ts'

const log = createLogger('admin')

const { required, port: portFrom, trustedProxies: trustedProxiesFrom } = serviceEnv(log)

const port = portFrom('ADMIN_PORT')
const host = process.env.ADMIN_HOST ?? '127.0.0.1'
const trustedProxies = trustedProxiesFrom()

let operators: Operator[]
try {
  operators = parseOperators(required('RINGPAY_ADMIN_OPERATORS'))
} catch (error) {
  if (!(error instanceof OperatorsSettingError)) throw error
  log.fatal({ variable: 'RINGPAY_ADMIN_OPERATORS', reason: error.message }, 'RINGPAY_ADMIN_OPERATORS is invalid')
  process.exit(configErrorExitCode)
}

const registry = new Registry()
collectDefaultMetrics({ register: registry })
const requestDuration = new Histogram({
  name: 'ringpay_admin_request_duration_seconds',
  help: 'Admin API requests by route and status',
  labelNames: ['route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
})
const authFailures = new Counter({ name: 'ringpay_admin_auth_failures_total', help: 'Admin requests without a valid operator token', registers: [registry] })
const changes = new Counter({ name: 'ringpay_admin_changes_total', help: 'Changes made to the keys file through the admin API', labelNames: ['action'] as const, registers: [registry] })

const ctx: AdminContext = {
  keysFile: new KeysFile(required('RINGPAY_API_KEYS_FILE')),
  operators,
  trustedProxies,
  log,
  registry,
  onRequest: (route, status, seconds) => requestDuration.observe({ route, status: String(status) }, seconds),
  onAuthFailure: () => authFailures.inc(),
  onChange: (action) => changes.inc({ action }),
}

const server = createServer({ requestTimeout: limits.requestDeadlineMs }, (req, res) => {
  handle(ctx, req, res).catch((error: unknown) => {
    // handle() answers every failure itself: this is a bug.
    log.fatal({ err: error }, 'admin handler threw')
    process.exit(70)
  })
})
server.listen(port, host, () => log.info({ host, port, operators: operators.map((o) => o.name), keys_file: ctx.keysFile.path }, 'admin listening'))

stopOnSignals(server, limits.shutdownDrainMs)
