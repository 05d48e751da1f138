// Whose request it is: X-Real-IP only from a trusted peer, nginx's request id only if tame.

import { once } from 'node:events'
import { createServer, request, type IncomingMessage } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { clientIpOf, markUnixSocketConnections, requestIdOf } from '../client-identity.ts'
import { defaultTrustedProxies, unixSocketPeer } from '../config.ts'

const trusted = new Set(['127.0.0.1', '::ffff:127.0.0.1'])
const req = (peer: string, headers: Record<string, string>): IncomingMessage =>
  ({ socket: { remoteAddress: peer }, headers }) as unknown as IncomingMessage

t.test('client IP', (t) => {
  t.equal(clientIpOf(req('127.0.0.1', { 'x-real-ip': '203.0.113.9' }), trusted), '203.0.113.9', 'from nginx: the header')
  t.equal(clientIpOf(req('::ffff:127.0.0.1', { 'x-real-ip': '2001:db8::1' }), trusted), '2001:db8::1')
  t.equal(clientIpOf(req('198.51.100.7', { 'x-real-ip': '203.0.113.9' }), trusted), '198.51.100.7', 'from anyone else: the socket')
  t.equal(clientIpOf(req('127.0.0.1', {}), trusted), '127.0.0.1', 'no header: the peer')
  t.equal(clientIpOf(req('127.0.0.1', { 'x-real-ip': '1.2.3.4, 5.6.7.8' }), trusted), '127.0.0.1', 'a malformed header is not believed')
  t.end()
})

t.test('request id', (t) => {
  t.equal(requestIdOf(req('127.0.0.1', { 'x-request-id': 'dbdb77b90ebefe0ddc8d605e7b62c80d' })), 'dbdb77b90ebefe0ddc8d605e7b62c80d')
  t.equal(requestIdOf(req('127.0.0.1', { 'x-request-id': 'a\nb' })), undefined)
  t.equal(requestIdOf(req('127.0.0.1', {})), undefined)
  t.end()
})

t.test('a connection on the node\'s Unix socket is nginx: named `unix`, its X-Real-IP believed by default', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'client-identity-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const seen: string[] = []
  const trustedByDefault = new Set(defaultTrustedProxies)
  const server = createServer((req, res) => {
    seen.push(clientIpOf(req, trustedByDefault), clientIpOf(req, trusted))
    res.end()
  })
  markUnixSocketConnections(server)
  server.listen(join(dir, 's.sock'))
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request({ socketPath: join(dir, 's.sock'), path: '/', headers: { 'x-real-ip': '203.0.113.9' } }, resolve).on('error', reject).end()
  })
  res.resume()
  t.same(seen, ['203.0.113.9', unixSocketPeer], 'trusted by default; without `unix` in the trusted set, the peer is named `unix`')
})
