// Whose request it is: X-Real-IP only from a trusted peer, nginx's request id only if tame.

import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { clientIpOf, requestIdOf } from '../client-identity.ts'

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
