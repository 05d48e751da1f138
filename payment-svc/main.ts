// Entry point of one payment node process. Configuration: see config.ts and the README.

import { createLogger } from '../lib/log.ts'
import { startTracing } from '../lib/tracing.ts'
import { loadNodeConfig } from './config.ts'
import { startPaymentNode } from './node.ts'

const config = loadNodeConfig(process.env)
const log = createLogger('payment-svc', { node_id: config.nodeId })

const fatal = (reason: string, error: unknown): never => {
  log.fatal({ err: error }, reason)
  // Exit at once: whatever was not acknowledged may or may not be on disk, and the client retries
  // idempotently; continuing after a failed fsync or a broken invariant could lose what was.
  process.exit(70)
}

process.on('uncaughtException', (error) => fatal('uncaught exception', error))
process.on('unhandledRejection', (error) => fatal('unhandled rejection', error))

// Issue #18: RINGPAY_TRACING=1 turns tracing on (the SDK is loaded only then); the relay's worker
// thread starts its own.
const tracer = await startTracing('payment-svc')
const node = await startPaymentNode(config, log, fatal)

let signalled = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (signalled) return
    signalled = true
    node.shutdown().then(() => tracer?.shutdown()).then(() => process.exit(0), (error) => fatal('shutdown failed', error))
  })
}
// Reloads the API keys file; the reloader logs the outcome (a bad file: no key in force).
process.on('SIGHUP', () => { void node.reloadApiKeys('signal') })
