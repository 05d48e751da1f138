// What the bench's own targets (a), (b) and (d) share, so they differ from each other and from the
// payment node only in the work they do: the payment node's HTTP server options
// (payment-svc/server.ts), the body bound, how a body is read and an answer sent, and how the
// process listens and stops.

import { chmodSync } from 'node:fs'
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'

/** Slow clients are cut off, and nginx (keepalive_timeout 60 s) always closes idle connections first. */
const requestTimeoutMs = 10_000
const keepAliveTimeoutMs = 65_000
const headerBytesMax = 16 * 1024
/** Body bytes kept at most (the rest is read and dropped); the payment node's bodyBytesMax. */
export const bodyBytesMax = 16 * 1024
const host = '127.0.0.1'
const listenBacklog = 1024

export function createTargetServer (listener: RequestListener): Server {
  return createServer({
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    maxHeaderSize: headerBytesMax,
  }, listener)
}

/** Reads the whole body: the chunks within bodyBytesMax (not concatenated) and the bytes sent in all. */
export function readBodyChunks (req: IncomingMessage, onEnd: (chunks: Buffer[], bytes: number) => void): void {
  const chunks: Buffer[] = []
  let bytes = 0
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    if (bytes <= bodyBytesMax) chunks.push(chunk)
  })
  req.on('end', () => onEnd(chunks, bytes))
}

export function sendJsonText (res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** The port from BENCH_PORT. */
export function targetPort (): number {
  const port = Number(process.env.BENCH_PORT)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error('BENCH_PORT must be a port number')
  return port
}

/** Listens on 127.0.0.1:port; SIGTERM/SIGINT close the server, then `close` (pools, stores), then exit. */
export function listenUntilSignalled (server: Server, port: number, close: () => Promise<unknown> = () => Promise.resolve()): void {
  server.listen({ host, port, backlog: listenBacklog })
  // BENCH_SOCKET: the same requests also on a Unix socket, for an nginx in front that reaches its
  // server the way the stack's nginx reaches the payment nodes (the health probe stays on the port).
  const socketPath = process.env.BENCH_SOCKET
  const viaSocket = socketPath ? createTargetServer((req, res) => server.emit('request', req, res)) : undefined
  // Anyone who can reach the dir may connect: nginx's workers run as the service user when the
  // bench runs as root (a bench target holds nothing worth more than its dir's protection).
  viaSocket?.listen({ path: socketPath, backlog: listenBacklog }, () => chmodSync(socketPath!, 0o666))
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      server.close()
      server.closeAllConnections()
      viaSocket?.close()
      viaSocket?.closeAllConnections()
      close().finally(() => process.exit(0))
    })
  }
}
