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
