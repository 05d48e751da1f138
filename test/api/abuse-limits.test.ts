// Abuse limits of the shared stack, through its nginx: the cap on failed API keys per client IP
// (with the failed-auth log lines), and the whole-request deadline against a client that dribbles
// its body. Each case is its own client IP (a fresh 127.x.y.z source address), so the IP it gets
// refused stays refused without touching the other tests, which all come from 127.0.0.1.

import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { maskCardNumbers } from '../../lib/card-numbers.ts'
import { defaultLimits } from '../../payment-svc/limits.ts'
import { accessLogFor } from '../infra/helpers.ts'
import { eventually, newCheckoutId } from '../helpers/api.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const publicPort = Number(new URL(stack.publicUrl).port)
const demoKey = stack.apiKeys.merchant_demo
const logDeadlineMs = 5_000
/** The node cuts a request off within requestDeadlineMs + requestDeadlineCheckIntervalMs; this much more for the answer to travel. */
const deadlineSlackMs = 3_000
const dribbleIntervalMs = 1_000

const runOctet = randomInt(2, 250)
let nextClient = 0
function clientIp (): string {
  nextClient++
  return `127.${runOctet}.${200 + Math.floor(nextClient / 250)}.${(nextClient % 250) + 1}`
}

interface Answer { status: number, headers: IncomingMessage['headers'], body: string }

function send (path: string, localAddress: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: publicPort, path, localAddress, agent: false, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The JSON lines of every node's log that mention `needle`. */
function nodeLogLines (needle: string): Array<Record<string, unknown>> {
  return stack.nodes.flatMap((n) => readFileSync(n.logFile, 'utf8').split('\n'))
    .filter((line) => line.startsWith('{') && line.includes(needle))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

t.test('past failedKeyAttemptsMax wrong keys, the client IP gets 429 even with a right key; failures are logged with IP and request id, never the key', async (t) => {
  const ip = clientIp()
  // One checkout id: every request lands on the same node, which counts this IP's failures.
  const id = newCheckoutId('abuse')
  const path = `/payments/${id}`
  const wrongKey = `sk_test_wrong_${newCheckoutId('k')}`
  for (let i = 0; i < defaultLimits.failedKeyAttemptsMax; i++) {
    const res = await send(path, ip, { authorization: `Bearer ${wrongKey}` })
    if (res.status !== 401) t.fail(`wrong key ${i + 1}: ${res.status}, expected 401`)
  }
  const refused = await send(path, ip, { authorization: `Bearer ${demoKey}` })
  t.equal(refused.status, 429, 'the right key from that IP is refused now')
  t.match(String(refused.headers['content-type']), /^application\/problem\+json/)
  t.equal(JSON.parse(refused.body).code, 'auth_attempts_exceeded')
  const retryAfterS = Number(refused.headers['retry-after'])
  t.ok(retryAfterS >= 1 && retryAfterS <= defaultLimits.failedKeyWindowMs / 1000, `Retry-After ${refused.headers['retry-after']} is within the window`)
  const wrongAgain = await send(path, ip, { authorization: `Bearer ${wrongKey}` })
  t.equal(wrongAgain.status, 429, 'and so is another guess')

  const otherIp = await send(path, clientIp(), { authorization: `Bearer ${demoKey}` })
  t.equal(otherIp.status, 404, 'another client IP with the right key is served (no such payment yet)')
  const loopback = await send(path, '127.0.0.1', { authorization: `Bearer ${demoKey}` })
  t.equal(loopback.status, 404, 'and so is 127.0.0.1')

  // The log: one line per failure with the IP nginx saw and nginx's request id.
  const accessLines = (await accessLogFor(id, defaultLimits.failedKeyAttemptsMax + 4)).filter((l) => l.status === 401)
  const lines = await eventually(async () => {
    const found = nodeLogLines(ip).filter((l) => l.msg === 'authentication failed')
    return found.length >= defaultLimits.failedKeyAttemptsMax ? found : undefined
  }, logDeadlineMs, 'the failed-auth log lines')
  t.equal(lines.length, defaultLimits.failedKeyAttemptsMax, 'one line per failure, none per refusal')
  t.ok(lines.every((l) => l.client_ip === ip && l.reason === 'unknown_key' && l.level === 40), 'warn lines with the client IP')
  // A hex request id can hold a Luhn-valid run of 13+ digits, which the node's log masks like any
  // card number (lib/log.ts); the access log does not mask request ids.
  t.same(lines.map((l) => String(l.request_id)).sort(), accessLines.map((l) => maskCardNumbers(l.request_id)).sort(), 'carrying nginx\'s request ids')
  t.equal(nodeLogLines(ip).filter((l) => String(l.msg).startsWith('failed API key attempts capped')).length, 1, 'the cap is logged once')
  const allLogs = stack.nodes.map((n) => readFileSync(n.logFile, 'utf8')).join('\n')
  t.notOk(allLogs.includes(wrongKey), 'the wrong key is in no log')
})

t.test('a client that dribbles its body is cut off at the whole-request deadline', async (t) => {
  // One byte a second: each read comes well within nginx's client_body_timeout (10 s), so only a
  // deadline on the whole request stops it; the body would take 2,000 s to arrive.
  const declaredBytes = 2_000
  const id = newCheckoutId('slow')
  // TLS over a TCP connection from this test's own source address.
  const socket = tlsConnect({ socket: netConnect({ host: '127.0.0.1', port: publicPort, localAddress: clientIp() }), host: '127.0.0.1' })
  let answer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { answer += chunk })
  const startedAt = performance.now()
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - startedAt)))
  socket.on('error', () => {})
  socket.write(`POST /payments HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${demoKey}\r\ncontent-type: application/json\r\n` +
    `x-payment-checkout-id: ${id}\r\ncontent-length: ${declaredBytes}\r\n\r\n{`)
  const dribble = setInterval(() => { if (!socket.destroyed) socket.write(' ') }, dribbleIntervalMs)
  t.teardown(() => { clearInterval(dribble); socket.destroy() })
  const limitMs = defaultLimits.requestDeadlineMs + defaultLimits.requestDeadlineCheckIntervalMs + deadlineSlackMs
  const closedAfterMs = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(resolve, limitMs, Infinity))])
  clearInterval(dribble)
  t.ok(closedAfterMs >= defaultLimits.requestDeadlineMs - 1_000, `not before the deadline (${Math.round(closedAfterMs)} ms)`)
  t.ok(closedAfterMs < limitMs, `the connection was closed ${Math.round(closedAfterMs)} ms in (limit ${limitMs} ms)`)
  t.match(answer, /^HTTP\/1\.1 408 /, 'answered 408')
  t.match(answer, /"code":"request_timeout"/, 'request_timeout problem')
})
