// Who sent a request, for abuse limits and logs: the client IP and nginx's request id.
// nginx sets X-Real-IP to the address it accepted the connection from (overwriting whatever the
// client sent), so the header is believed only when the peer is a trusted proxy; a caller that
// reaches the node directly is its own socket address.

import type { IncomingMessage } from 'node:http'

const ipPattern = /^[0-9A-Fa-f.:]{2,45}$/
// nginx's $request_id is 32 hex characters; a direct caller may send its own, kept if it is tame.
const requestIdPattern = /^[A-Za-z0-9_-]{1,64}$/

export function clientIpOf (req: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  const peer = req.socket.remoteAddress ?? 'unknown'
  if (!trustedProxies.has(peer)) return peer
  const forwarded = req.headers['x-real-ip']
  return typeof forwarded === 'string' && ipPattern.test(forwarded) ? forwarded : peer
}

export function requestIdOf (req: IncomingMessage): string | undefined {
  const id = req.headers['x-request-id']
  return typeof id === 'string' && requestIdPattern.test(id) ? id : undefined
}
