// nginx's abuse limits and the node's per-merchant long-poll cap, with limits low enough to reach:
// one payment node (a real process, no Kafka) behind real nginx instances of its own: one with
// low request rates, one with few worker connections and a low per-IP concurrency, one with a low
// per-key concurrency. Clients bind their own loopback source address (127.x.y.z: all of 127/8
// is local on Linux), so each case is its own "client IP" to nginx.

import { spawn } from 'node:child_process'
import { hash, randomInt } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { writeTestFieldKeysFile } from '../helpers/field-keys.ts'
import { formatInternalServices, internalTokenHeader } from '../../lib/internal-credentials.ts'
import { createNginx, type NginxAbuseLimits, type NginxHandle } from '../../scripts/stack/nginx.ts'
import { pickFreePorts } from '../../scripts/stack/ports.ts'
import { eventually } from '../helpers/api.ts'

const merchantsCount = 48
const longPollsPerMerchantMax = 2
/** Held long-polls wait this long at the node; every case ends them (socket destroyed) well before. */
const heldWaitMs = 25_000
const startDeadlineMs = 20_000
/** Refusals and held polls are told apart by the node's waiter count, polled until this. */
const settleDeadlineMs = 15_000
const internalAnswerDeadlineMs = 10_000
const drainDeadlineMs = 10_000
/** The audit service's token (a read-only caller of the internal API), given to the node as its digest. */
const internalToken = 'abuse-limits-internal-token-0123'

// nginx R: request rates low enough to exceed in a burst.
const rateLimits: Partial<NginxAbuseLimits> = {
  perIpRequestsPerSecondMax: 1, perIpBurstRequestsMax: 2, perKeyRequestsPerSecondMax: 1, perKeyBurstRequestsMax: 2,
}
// nginx C: 64 worker connections, 4 idle upstream ones, 16 reserved for the internal server →
// (64 - 4 - 16) / 2 = 22 public requests in progress at most; 3 per client IP.
const connWorkerConnections = 64
const connUpstreamKeepalive = 4
const connLimits: Partial<NginxAbuseLimits> = { perIpConnectionsMax: 3, internalReservedConnections: 16 }
const publicConnectionsMax = 22
// nginx K: two requests in progress per API key, as many as the node's per-merchant long-polls,
// so a third long-poll of one key is refused by nginx (rate_limited) before the node would.
const keyConnLimits: Partial<NginxAbuseLimits> = { perKeyConnectionsMax: 2 }

const keyOf = (i: number): string => `sk_test_abuse_${i}_0123456789abcdef`
const checkoutOf = (i: number): string => `abuse-m${i}`

/** A fresh loopback address per client; the second octet keeps concurrent runs apart. */
const runOctet = randomInt(2, 250)
let nextClient = 0
function clientIp (): string {
  nextClient++
  return `127.${runOctet}.${Math.floor(nextClient / 250)}.${(nextClient % 250) + 1}`
}

interface Answer { status: number, headers: IncomingMessage['headers'], body: string }

/** One request on its own connection (Connection: close) from `localAddress`; `signal` ends it early. */
function send (port: number, path: string, o: { localAddress: string, method?: string, headers?: Record<string, string>, body?: string, signal?: AbortSignal }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', localAddress: o.localAddress, agent: false, headers: o.headers, signal: o.signal }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

/** A long-poll that stays open until the returned `end()`; `answered` settles if it is refused (or ends). */
function holdLongPoll (port: number, merchant: number, localAddress: string): { answered: Promise<Answer | 'aborted'>, end: () => void } {
  const abort = new AbortController()
  const answered = send(port, `/payments/${checkoutOf(merchant)}?wait_ms=${heldWaitMs}`, {
    localAddress, headers: { authorization: `Bearer ${keyOf(merchant)}` }, signal: abort.signal,
  }).catch((error: unknown) => {
    if (abort.signal.aborted) return 'aborted' as const
    throw error
  })
  return { answered, end: () => abort.abort() }
}

function isRateLimited (t: any, a: Answer, what: string): void {
  t.equal(a.status, 429, `${what}: 429`)
  t.match(String(a.headers['content-type']), /^application\/problem\+json/, `${what}: problem+json`)
  t.match(String(a.headers['retry-after']), /^[1-9][0-9]*$/, `${what}: Retry-After`)
}

t.test('abuse limits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-abuse-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keysFile = join(dir, 'keys.json')
  writeFileSync(keysFile, JSON.stringify({
    keys: Array.from({ length: merchantsCount }, (_, i) => ({ merchant_id: `m${i}`, key_sha256: hash('sha256', keyOf(i), 'hex') })),
  }))
  const [nodePort, adminPort, rPublic, rInternal, cPublic, cInternal, kPublic, kInternal] =
    await pickFreePorts(8) as [number, number, number, number, number, number, number, number]
  const node = spawn(process.execPath, [new URL('../../payment-svc/main.ts', import.meta.url).pathname], {
    env: {
      ...process.env,
      KAFKA_BROKERS: '',
      RINGPAY_NODE_ID: 'abuse',
      RINGPAY_PUBLIC_PORT: String(nodePort),
      RINGPAY_ADMIN_PORT: String(adminPort),
      RINGPAY_DATA_DIR: join(dir, 'db'),
      RINGPAY_API_KEYS_FILE: keysFile,
      RINGPAY_FIELD_KEYS_FILE: writeTestFieldKeysFile(dir),
      RINGPAY_INTERNAL_SERVICES: formatInternalServices([{ service: 'audit', token: internalToken }]),
      RINGPAY_LONG_POLLS_PER_MERCHANT_MAX: String(longPollsPerMerchantMax),
      RINGPAY_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  t.teardown(() => { node.kill('SIGKILL') })
  const nginxes: NginxHandle[] = []
  t.teardown(async () => { await Promise.allSettled(nginxes.map((n) => n.stop())) })
  const startNginx = async (name: string, publicPort: number, internalPort: number, extra: Record<string, unknown>): Promise<void> => {
    const nginxDir = join(dir, name)
    mkdirSync(nginxDir, { recursive: true })
    const handle = createNginx({
      dir: nginxDir, logsDir: join(nginxDir, 'logs'), logFile: join(nginxDir, 'logs', 'nginx.log'),
      publicPort, internalPort, nodeServers: [`127.0.0.1:${nodePort}`], ...extra,
    })
    nginxes.push(handle)
    await handle.start()
  }
  const local = clientIp()
  await eventually(async () => {
    const res = await send(adminPort, '/readyz', { localAddress: local }).catch(() => undefined)
    return res?.status === 200 ? true : undefined
  }, startDeadlineMs, 'the node to be ready')
  await startNginx('rate', rPublic, rInternal, { abuseLimits: rateLimits })
  await startNginx('conn', cPublic, cInternal, { abuseLimits: connLimits, workerConnections: connWorkerConnections, upstreamKeepalive: connUpstreamKeepalive })
  await startNginx('key', kPublic, kInternal, { abuseLimits: keyConnLimits })
  for (let i = 0; i < merchantsCount; i++) {
    const res = await send(nodePort, '/payments', {
      localAddress: local, method: 'POST', body: JSON.stringify({ amount: 100, currency: 'EUR', payment_method: 'pm_card_visa' }),
      headers: { authorization: `Bearer ${keyOf(i)}`, 'content-type': 'application/json', 'x-payment-checkout-id': checkoutOf(i) },
    })
    if (res.status !== 202) throw new Error(`setting up payment ${i}: ${res.status} ${res.body}`)
  }
  const waitersAtNode = async (): Promise<number> => {
    const res = await send(adminPort, '/metrics', { localAddress: local })
    return Number(/^ringpay_long_poll_waiters(?:\{[^}]*\})? (\d+)/m.exec(res.body)?.[1] ?? NaN)
  }
  /**
   * Once every poll has been answered (refused) or is waiting at the node: in poll order, the
   * answer or 'held'. Counting at the node, not waiting a while, keeps a slow machine from
   * taking a late refusal for a held poll.
   */
  const settle = async (polls: Array<ReturnType<typeof holdLongPoll>>): Promise<Array<Answer | 'held' | string>> => {
    const results: Array<Answer | string | undefined> = polls.map(() => undefined)
    polls.forEach((p, i) => {
      p.answered.then((a) => { results[i] = a }, (error: unknown) => { results[i] = `error: ${String(error)}` })
    })
    await eventually(async () => {
      const answered = results.filter((r) => r !== undefined).length
      return answered + (await waitersAtNode()) >= polls.length ? true : undefined
    }, settleDeadlineMs, 'every long-poll refused or waiting at the node')
    return results.map((r) => r ?? 'held')
  }
  /** Every long-poll a case held is gone at the node (nginx saw its client leave and closed upstream). */
  const drained = (): Promise<true> => eventually(async () => ((await waitersAtNode()) === 0 ? true : undefined), drainDeadlineMs, 'held long-polls to end')

  t.test('per client IP: a burst over the rate gets 429 rate_limited; another IP is unaffected', async (t) => {
    const attacker = clientIp()
    const burst = await Promise.all(Array.from({ length: 20 }, () => send(rPublic, `/payments/${checkoutOf(0)}`, { localAddress: attacker })))
    const limited = burst.filter((a) => a.status === 429)
    t.ok(limited.length >= 10, `${limited.length} of 20 refused (rate 1/s, burst 2)`)
    t.ok(burst.every((a) => a.status === 429 || a.status === 401), 'the others reached the node (no key: 401)')
    isRateLimited(t, limited[0]!, 'over the per-IP rate')
    t.same(JSON.parse(limited[0]!.body), { type: 'about:blank', title: 'Too many requests; retry later', status: 429, code: 'rate_limited' })
    const other = await send(rPublic, `/payments/${checkoutOf(0)}`, { localAddress: clientIp(), headers: { authorization: `Bearer ${keyOf(0)}` } })
    t.equal(other.status, 200, 'a client on another IP is served')
  })

  t.test('per API key: one key from many IPs over the rate gets 429', async (t) => {
    const headers = { authorization: `Bearer ${keyOf(1)}` }
    const spread = await Promise.all(Array.from({ length: 20 }, () => send(rPublic, `/payments/${checkoutOf(1)}`, { localAddress: clientIp(), headers })))
    const limited = spread.filter((a) => a.status === 429)
    t.ok(limited.length >= 10, `${limited.length} of 20 refused, each from its own IP`)
    t.ok(spread.every((a) => a.status === 429 || a.status === 200), 'the others were served')
    isRateLimited(t, limited[0]!, 'over the per-key rate')
    const otherKey = await send(rPublic, `/payments/${checkoutOf(2)}`, { localAddress: clientIp(), headers: { authorization: `Bearer ${keyOf(2)}` } })
    t.equal(otherKey.status, 200, 'another key is served')
  })

  t.test('per client IP: concurrent requests over perIpConnectionsMax get 429', async (t) => {
    const ip = clientIp()
    const polls = [3, 4, 5, 6, 7].map((m) => holdLongPoll(cPublic, m, ip))
    t.teardown(() => { for (const p of polls) p.end() })
    const outcome = await settle(polls)
    const refused = outcome.filter((o): o is Answer => typeof o === 'object')
    t.equal(outcome.filter((o) => o === 'held').length, 3, 'three held (perIpConnectionsMax 3)')
    t.equal(refused.length, 2, 'two refused at once')
    for (const a of refused) isRateLimited(t, a, 'over the per-IP concurrency')
    const other = await send(cPublic, `/payments/${checkoutOf(8)}`, { localAddress: clientIp(), headers: { authorization: `Bearer ${keyOf(8)}` } })
    t.equal(other.status, 200, 'another IP is served meanwhile')
    for (const p of polls) p.end()
    await drained()
  })

  t.test('per API key: concurrent requests over perKeyConnectionsMax get 429, each from its own IP', async (t) => {
    const polls = [12, 12, 12, 13].map((m) => holdLongPoll(kPublic, m, clientIp()))
    t.teardown(() => { for (const p of polls) p.end() })
    const outcome = await settle(polls)
    t.equal(outcome.slice(0, 3).filter((o) => o === 'held').length, 2, 'two of the key\'s three held')
    t.equal(outcome[3], 'held', 'another key\'s poll held')
    const refused = outcome.filter((o): o is Answer => typeof o === 'object')
    t.equal(refused.length, 1, 'the third refused')
    isRateLimited(t, refused[0]!, 'over the per-key concurrency')
    t.equal(JSON.parse(refused[0]!.body).code, 'rate_limited', 'by nginx, before the node\'s long-poll cap')
    for (const p of polls) p.end()
    await drained()
  })

  t.test('a merchant over longPollsPerMerchantMax gets 429 long_poll_limit; other merchants are unaffected', async (t) => {
    const polls = [9, 9, 9, 10, 10].map((m) => holdLongPoll(cPublic, m, clientIp()))
    t.teardown(() => { for (const p of polls) p.end() })
    const outcome = await settle(polls)
    const refused = outcome.filter((o): o is Answer => typeof o === 'object')
    t.equal(outcome.slice(0, 3).filter((o) => o === 'held').length, 2, 'two of merchant 9\'s three polls held')
    t.equal(refused.length, 1, 'the third refused at once')
    t.equal(outcome.slice(3).filter((o) => o === 'held').length, 2, 'merchant 10 holds both of its polls')
    const a = refused[0]!
    isRateLimited(t, a, 'over the merchant\'s long-polls')
    t.equal(JSON.parse(a.body).code, 'long_poll_limit')
    t.equal(a.headers['retry-after'], '1')
    for (const p of polls) p.end()
    await drained()
    const again = holdLongPoll(cPublic, 9, clientIp())
    t.same(await settle([again]), ['held'], 'the slot is free again once a poll ends')
    again.end()
    await drained()
  })

  t.test('a public flood leaves worker connections for the internal server', async (t) => {
    // Long-polls from as many IPs. Unlimited, 31 of them would take 62 worker connections, which
    // with the 2 listening sockets is all 64: the internal server could accept nothing. Limited,
    // 22 are held (44) and the rest answered 429 and closed; floodSize stays low enough that the
    // moment all are accepted at once (34 + 22 upstream + 2 + 4 idle upstream) fits in 64 too.
    const floodSize = 34
    const flood = Array.from({ length: floodSize }, (_, i) => holdLongPoll(cPublic, 11 + (i % (merchantsCount - 11)), clientIp()))
    t.teardown(() => { for (const p of flood) p.end() })
    const outcome = await settle(flood)
    const refused = outcome.filter((o): o is Answer => typeof o === 'object')
    t.equal(outcome.filter((o) => o === 'held').length, publicConnectionsMax, `${publicConnectionsMax} held: (64 - 4 - 16) / 2`)
    t.equal(refused.length, floodSize - publicConnectionsMax, 'the rest refused')
    for (const a of refused) isRateLimited(t, a, 'over the public total')
    const internal = await Promise.race([
      send(cInternal, `/internal/payments/m0/${checkoutOf(0)}`, { localAddress: clientIp(), headers: { 'x-payment-checkout-id': checkoutOf(0), [internalTokenHeader]: internalToken } }),
      new Promise<'no answer'>((resolve) => setTimeout(resolve, internalAnswerDeadlineMs, 'no answer')),
    ])
    t.equal(typeof internal === 'object' ? internal.status : internal, 200, 'the internal server answers during the flood')
    for (const p of flood) p.end()
    await drained()
  })
})
