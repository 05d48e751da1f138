// Who sent a request, for abuse limits and logs: the client IP and nginx's request id.
// nginx sets X-Real-IP to the address it accepted the connection from (overwriting whatever the
// client sent), so the header is believed only when the peer is a trusted proxy; a caller that
// reaches the node directly is its own socket address. A connection on the node's Unix socket has
// no address: it is named `unix` (trusted by default: only the service user can open the socket).

import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import { unixSocketPeer } from './config.ts'

// Connections accepted on a Unix socket listener (they have no remote address to tell them by).
const unixConnections = new WeakSet<Socket>()

/** Marks every connection `server` accepts as a Unix socket peer; call before it listens on a path. */
export function markUnixSocketConnections (server: Server): void {
  server.on('connection', (socket: Socket) => { unixConnections.add(socket) })
}

const ipPattern = /^[0-9A-Fa-f.:]{2,45}$/
// nginx's $request_id is 32 hex characters; a direct caller may send its own, kept if it is tame.
const requestIdPattern = /^[A-Za-z0-9_-]{1,64}$/

export function clientIpOf (req: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  const peer = unixConnections.has(req.socket) ? unixSocketPeer : req.socket.remoteAddress ?? 'unknown'
  if (!trustedProxies.has(peer)) return peer
  const forwarded = req.headers['x-real-ip']
  return typeof forwarded === 'string' && ipPattern.test(forwarded) ? forwarded : peer
}

export function requestIdOf (req: IncomingMessage): string | undefined {
  const id = req.headers['x-request-id']
  return typeof id === 'string' && requestIdPattern.test(id) ? id : undefined
}
