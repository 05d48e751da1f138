// Entry point of the Nimbus sandbox PSP process (issue #16): `node nimbus-psp/main.ts`.
// Env: NIMBUS_PORT, NIMBUS_DATA_DIR, NIMBUS_API_KEY, NIMBUS_HMAC_KEY, NIMBUS_NOTIFICATION_BASE_URL
// (the public nginx; unset: no notifications); optional NIMBUS_HOST (127.0.0.1),
// NIMBUS_LATENCY_MEDIAN_MS, NIMBUS_LATENCY_P99_MS (its
// engine's latency), NIMBUS_NOTIFICATION_BATCH_WINDOW_MS.

import { createLogger } from '../lib/log.ts'
import { startNimbusPsp } from './nimbus.ts'
import { stopOnSignalsThen } from '../lib/service-shutdown.ts'

const log = createLogger('nimbus-psp')

function required (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') {
    log.fatal({ setting: name }, 'required setting missing')
    process.exit(78)
  }
  return value
}

function optionalMs (name: string): number | undefined {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < 0) {
    log.fatal({ setting: name }, 'must be a non-negative integer (ms)')
    process.exit(78)
  }
  return value
}

const fatal = (reason: string, error: unknown): never => {
  log.fatal({ err: error }, reason)
  process.exit(70)
}
process.on('uncaughtException', (error) => fatal('uncaught exception', error))
process.on('unhandledRejection', (error) => fatal('unhandled rejection', error))

const latencyMedianMs = optionalMs('NIMBUS_LATENCY_MEDIAN_MS')
const latencyP99Ms = optionalMs('NIMBUS_LATENCY_P99_MS')
const batchWindowMs = optionalMs('NIMBUS_NOTIFICATION_BATCH_WINDOW_MS')
const psp = await startNimbusPsp({
  host: process.env.NIMBUS_HOST ?? '127.0.0.1',
  port: Number(required('NIMBUS_PORT')),
  dataDir: required('NIMBUS_DATA_DIR'),
  apiKey: required('NIMBUS_API_KEY'),
  hmacKey: required('NIMBUS_HMAC_KEY'),
  notificationBaseUrl: process.env.NIMBUS_NOTIFICATION_BASE_URL || null,
  runtime: {
    ...(latencyMedianMs !== undefined ? { latencyMedianMs } : {}),
    ...(latencyP99Ms !== undefined ? { latencyP99Ms } : {}),
  },
  ...(batchWindowMs !== undefined ? { notificationLimits: { batchWindowMs } } : {}),
}, log)

stopOnSignalsThen(log, () => psp.stop(), fatal)
