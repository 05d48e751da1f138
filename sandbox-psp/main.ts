// Entry point of the sandbox PSP process: `node sandbox-psp/main.ts [--flag value ...]`.
// Configuration from the environment (PSP_*), overridden by flags; see README.md and config.ts.

import { createLogger } from '../lib/log.ts'
import { ConfigError, flagsToEnv, loadPspConfig } from './config.ts'
import { startSandboxPsp } from './psp.ts'
import { stopOnSignalsThen } from '../lib/service-shutdown.ts'

const log = createLogger('sandbox-psp')

let config
try {
  config = loadPspConfig({ ...process.env, ...flagsToEnv(process.argv.slice(2)) })
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  log.fatal({ err: error }, 'invalid configuration')
  process.exit(78)
}

const fatal = (reason: string, error: unknown): never => {
  log.fatal({ err: error }, reason)
  // Whatever was answered is on disk (every write is fsynced first); the rest is retried by clients.
  process.exit(70)
}
process.on('uncaughtException', (error) => fatal('uncaught exception', error))
process.on('unhandledRejection', (error) => fatal('unhandled rejection', error))

const psp = await startSandboxPsp(config, log)

stopOnSignalsThen(log, () => psp.stop(), fatal)
