// Start-up settings the small services (reporting, notifier, admin) read alike: a missing or
// malformed one stops the process with a log line naming the variable and exit code 78
// (EX_CONFIG), so the stack runner reports a configuration error, not a crash.

import type { Logger } from './log.ts'

export const configErrorExitCode = 78

/** Loopback in its spellings: nginx runs beside the service. */
export const defaultTrustedProxiesSetting = '127.0.0.1,::1,::ffff:127.0.0.1'

export interface ServiceEnv {
  /** The value, or exit when it is missing or empty. */
  required: (name: string) => string
  /** A TCP port 1–65535, or exit. */
  port: (name: string) => number
  /** RINGPAY_TRUSTED_PROXIES: peers whose X-Real-IP names the client. */
  trustedProxies: () => Set<string>
  /** Logs `message` for `name` and exits 78. */
  fail: (name: string, message: string) => never
}

export function serviceEnv (log: Logger, env: NodeJS.ProcessEnv = process.env): ServiceEnv {
  const fail = (name: string, message: string): never => {
    log.fatal({ variable: name }, message)
    process.exit(configErrorExitCode)
  }
  const required = (name: string): string => {
    const value = env[name]
    return value === undefined || value === '' ? fail(name, `${name} is required`) : value
  }
  const port = (name: string): number => {
    const value = Number(required(name))
    return Number.isInteger(value) && value >= 1 && value <= 65_535 ? value : fail(name, `${name} must be a port number`)
  }
  const trustedProxies = (): Set<string> =>
    new Set((env.RINGPAY_TRUSTED_PROXIES ?? defaultTrustedProxiesSetting).split(',').map((p) => p.trim()).filter((p) => p !== ''))
  return { required, port, trustedProxies, fail }
}
