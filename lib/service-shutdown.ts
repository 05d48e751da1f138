// How an HTTP service of the stack stops on SIGTERM or SIGINT (reporting, admin, console): stop
// taking connections, let requests in flight finish for at most `drainMs`, then close what the
// service holds (pools, clients) and exit 0. A second signal while stopping changes nothing.

import type { Server } from 'node:http'

export function stopOnSignals (server: Server, drainMs: number, o: { beforeClose?: () => void, release?: () => Promise<unknown> } = {}): void {
  let stopping = false
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return
      stopping = true
      o.beforeClose?.()
      server.close()
      setTimeout(() => server.closeAllConnections(), drainMs).unref()
      server.on('close', () => {
        void Promise.resolve(o.release?.()).catch(() => {}).finally(() => process.exit(0))
      })
    })
  }
}

/**
 * The sandbox PSPs' stop (sandbox-psp, nimbus-psp): on the first SIGTERM or SIGINT, log it, run
 * `stop` (it finishes in-flight work and closes the store), exit 0; a failing stop goes to `fatal`.
 */
export function stopOnSignalsThen (log: { info: (o: object, msg: string) => void }, stop: () => Promise<void>, fatal: (reason: string, error: unknown) => never): void {
  let signalled = false
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (signalled) return
      signalled = true
      log.info({ signal }, 'stopping')
      stop().then(() => process.exit(0), (error: unknown) => fatal('shutdown failed', error))
    })
  }
}
