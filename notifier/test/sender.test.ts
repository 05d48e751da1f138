// One delivery attempt against a local server: signed with every secret given, a 2xx is success,
// a redirect is not followed, a slow answer is cut at deliveryTimeoutMs, the answer is read only
// so far; production mode refuses http and loopback before connecting, and the connect-time
// lookup refuses a name that resolves to a loopback address.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { verifyWebhookSignature } from '../../lib/webhook-signature.ts'
import { Sender } from '../sender.ts'
import { checkedLookup } from '../ssrf.ts'

interface Seen { headers: Record<string, unknown>, body: string }

async function server (answer: (url: string) => { status: number, delayMs?: number, body?: string, location?: string }): Promise<{ server: Server, port: number, seen: Seen[] }> {
  const seen: Seen[] = []
  const s = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      seen.push({ headers: req.headers, body })
      const a = answer(req.url ?? '/')
      setTimeout(() => {
        res.writeHead(a.status, a.location === undefined ? {} : { location: a.location })
        res.end(a.body ?? '')
      }, a.delayMs ?? 0)
    })
  })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  return { server: s, port: (s.address() as AddressInfo).port, seen }
}

const options = { deliveryTimeoutMs: 500, responseBytesMax: 64, responseErrorCharsMax: 40, urlCharsMax: 2048, userAgent: 'test' }

t.test('dev mode: a signed attempt, success and failures', async (t) => {
  const { server: s, port, seen } = await server((url) => {
    if (url === '/ok') return { status: 204 }
    if (url === '/moved') return { status: 302, location: 'http://127.0.0.1:1/' }
    if (url === '/slow') return { status: 200, delayMs: 2_000 }
    return { status: 500, body: `line\nbreak ${'x'.repeat(500)}` }
  })
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const sender = new Sender({ ...options, policy: { allowLoopback: true } })
  t.teardown(() => sender.close())
  const body = '{"id":"evt_1"}'
  // Through a name: the connect-time lookup runs (and allows loopback in dev mode).
  const ok = await sender.send(`http://localhost:${port}/ok`, 'evt_1', body, ['whsec_a', 'whsec_b'])
  t.match(ok, { ok: true, httpStatus: 204, error: undefined })
  const header = String(seen[0]!.headers['ringpay-signature'])
  t.equal(seen[0]!.body, body)
  t.equal(seen[0]!.headers['ringpay-event-id'], 'evt_1')
  t.same(verifyWebhookSignature('whsec_a', header, body, Math.floor(Date.now() / 1000), 300), { ok: true })
  t.same(verifyWebhookSignature('whsec_b', header, body, Math.floor(Date.now() / 1000), 300), { ok: true })
  t.match(await sender.send(`http://127.0.0.1:${port}/moved`, 'evt_1', body, ['whsec_a']), { ok: false, httpStatus: 302, error: 'HTTP 302' }, 'a redirect is a failure, not followed')
  t.equal(seen.length, 2, 'nothing was sent to the redirect target')
  const failed = await sender.send(`http://127.0.0.1:${port}/fail`, 'evt_1', body, ['whsec_a'])
  t.match(failed, { ok: false, httpStatus: 500 })
  t.ok(failed.error!.length <= 'HTTP 500: '.length + 40 && !failed.error!.includes('\n'), failed.error ?? 'no error')
  const slow = await sender.send(`http://127.0.0.1:${port}/slow`, 'evt_1', body, ['whsec_a'])
  t.match(slow, { ok: false, httpStatus: undefined, error: /^timeout/ })
  t.ok(slow.latencyMs < 1_500, `cut at the timeout (${Math.round(slow.latencyMs)} ms)`)
  t.match(await sender.send('http://127.0.0.1:1/closed', 'evt_1', body, ['whsec_a']), { ok: false, httpStatus: undefined, error: /ECONNREFUSED/ })
})

t.test('production mode: http and loopback refused before any connection', async (t) => {
  const { server: s, port, seen } = await server(() => ({ status: 200 }))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const sender = new Sender({ ...options, policy: { allowLoopback: false } })
  t.teardown(() => sender.close())
  t.match(await sender.send(`http://127.0.0.1:${port}/`, 'evt_1', '{}', ['whsec_a']), { ok: false, error: /^scheme_not_allowed/ })
  t.match(await sender.send(`https://127.0.0.1:${port}/`, 'evt_1', '{}', ['whsec_a']), { ok: false, error: /^address_not_public/ })
  t.match(await sender.send(`https://[::ffff:127.0.0.1]:${port}/`, 'evt_1', '{}', ['whsec_a']), { ok: false, error: /^address_not_public/ })
  t.match(await sender.send(`https://localhost:${port}/`, 'evt_1', '{}', ['whsec_a']), { ok: false, error: /^address_not_public/ })
  t.equal(seen.length, 0, 'nothing reached the server')
})

t.test('the connect-time lookup refuses what resolves to a refused address', async (t) => {
  const lookup = checkedLookup({ allowLoopback: false })
  const result = await new Promise<{ error: unknown, address: unknown }>((resolve) => lookup('localhost', { all: true }, (error, address) => resolve({ error, address })))
  t.match(result.error, { code: 'address_not_public' })
  const dev = checkedLookup({ allowLoopback: true })
  const one = await new Promise<{ error: unknown, address: unknown, family: unknown }>((resolve) => dev('localhost', {}, (error, address, family) => resolve({ error, address, family })))
  t.equal(one.error, null)
  t.match(String(one.address), /^(127\.|::1)/)
  const all = await new Promise<{ error: unknown, address: unknown }>((resolve) => dev('localhost', { all: true }, (error, address) => resolve({ error, address })))
  t.ok(Array.isArray(all.address), 'all addresses when asked for all (autoSelectFamily)')
})
