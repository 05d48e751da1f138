// The real process (node sandbox-psp/main.ts): a kill -9 forgets nothing that was answered (charges,
// idempotency records, the 5xx-once marker, pending async charges, the webhook outbox), and SIGTERM
// finishes the request in flight before exiting 0.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { call, chargeBody, eventually, secretKey, startReceiver, tempDir, webhookSecret, type ChargeBody, type Reply } from './helpers.ts'
import { listeningPort } from '../listening-port.ts'

const mainPath = new URL('../main.ts', import.meta.url).pathname
const startDeadlineMs = 15_000

interface Child {
  child: ChildProcess
  url: string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Starts the PSP process on a free port (PSP_PORT=0) and learns the port from its start-up log line. */
async function spawnPsp (t: Tap, env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, [mainPath], {
    env: { ...process.env, RINGPAY_LOG_LEVEL: 'info', PSP_PORT: '0', PSP_SECRET_KEY: secretKey, PSP_WEBHOOK_SECRET: webhookSecret, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const port = await listeningPort(child, startDeadlineMs)
  return { child, url: `http://127.0.0.1:${port}`, exited }
}

type Tap = { teardown: (fn: () => unknown) => void }

function post (url: string, body: ChargeBody): Promise<Reply> {
  return call(`${url}/v1/charges`, { method: 'POST', headers: { 'idempotency-key': body.reference }, body })
}

t.test('kill -9 forgets nothing that was answered; the outbox and async charges resume', async (t) => {
  const dataDir = tempDir('psp-durable-')
  const { receiver, url: receiverUrl } = await startReceiver(t)
  receiver.respond = () => 503
  const env = {
    PSP_DATA_DIR: dataDir,
    PSP_WEBHOOK_BASE_URL: receiverUrl,
    PSP_ASYNC_DELAY_MS: '1000',
    PSP_WEBHOOK_RETRY_BASE_MS: '50',
    PSP_WEBHOOK_RETRY_MAX_MS: '100',
    PSP_WEBHOOK_ATTEMPTS_MAX: '30',
  }
  const first = await spawnPsp(t, env)
  const visa = chargeBody('pm_card_visa')
  const asyncBody = chargeBody('pm_card_async')
  const once5xx = chargeBody('pm_card_5xx_once')
  const charged = (await post(first.url, visa)).body
  const pending = (await post(first.url, asyncBody)).body
  t.equal(pending.status, 'pending')
  t.equal((await post(first.url, once5xx)).status, 500)
  await receiver.waitFor((r) => r.length >= 2, 'failing delivery attempts')
  const before = (await call(`${first.url}/admin/stats`)).body
  t.match(before, { charges: { total: 2, pending: 1 }, webhooks: { pending: 2, delivered: 0 } })

  first.child.kill('SIGKILL')
  t.match(await first.exited, { signal: 'SIGKILL' })
  receiver.respond = () => 200

  const second = await spawnPsp(t, env)
  const byId = await call(`${second.url}/v1/charges/${charged.id}`)
  t.same(byId.body, charged, 'the charge survived')
  const replay = await post(second.url, visa)
  t.equal(replay.status, 200, 'its idempotency record too')
  t.equal(replay.body.id, charged.id)
  const retried = await post(second.url, once5xx)
  t.equal(retried.status, 201, 'the 5xx-once marker survived: no second 500')

  const completed = await eventually(async () => {
    const reply = await call(`${second.url}/v1/charges/${pending.id}`)
    return reply.body.status === 'succeeded' ? reply.body : undefined
  }, 'the async charge to complete after the restart')
  t.equal(completed.settled_on, new Date().toISOString().slice(0, 10))

  const succeededFor = (body: ChargeBody): boolean =>
    receiver.forReference(body.reference).some((h) => h.event.type === 'charge.succeeded')
  await receiver.waitFor(() => succeededFor(visa) && succeededFor(asyncBody) && succeededFor(once5xx),
    'charge.succeeded for all three, including the one left in the outbox by the kill', 10_000)
  await eventually(async () => {
    const s = (await call(`${second.url}/admin/stats`)).body
    return s.webhooks.pending === 0 ? s : undefined
  }, 'nothing pending')
  const after = (await call(`${second.url}/admin/stats`)).body
  t.match(after, { charges: { total: 3, succeeded: 3, pending: 0 }, keysWithMultipleCharges: 0 })
  for (const body of [visa, asyncBody, once5xx]) {
    t.equal((await call(`${second.url}/admin/charges?idempotency_key=${body.reference}`)).body.data.length, 1, `one charge for ${body.payment_method}`)
  }
  second.child.kill('SIGTERM')
  t.match(await second.exited, { code: 0 })
})

t.test('SIGTERM finishes the request in flight, then exits 0 with the charge on disk', async (t) => {
  const dataDir = tempDir('psp-sigterm-')
  const env = { PSP_DATA_DIR: dataDir, PSP_LATENCY_MEDIAN_MS: '400', PSP_LATENCY_P99_MS: '400' }
  const psp = await spawnPsp(t, env)
  const body = chargeBody()
  const inFlight = post(psp.url, body)
  await eventually(async () => ((await call(`${psp.url}/admin/stats`)).body.inFlight.keysInProgress === 1 ? true : undefined), 'the request in flight')
  psp.child.kill('SIGTERM')
  const reply = await inFlight
  t.equal(reply.status, 201, 'answered, not cut off')
  t.match(await psp.exited, { code: 0, signal: null })

  const again = await spawnPsp(t, { ...env, PSP_LATENCY_MEDIAN_MS: '0', PSP_LATENCY_P99_MS: '0' })
  t.equal((await call(`${again.url}/v1/charges/${reply.body.id}`)).body.id, reply.body.id)
  again.child.kill('SIGTERM')
  t.match(await again.exited, { code: 0 })
})

t.test('a bad configuration stops start-up with a message naming the variable', async (t) => {
  const child = spawn(process.execPath, [mainPath], {
    env: { ...process.env, PSP_DATA_DIR: tempDir(), PSP_SECRET_KEY: secretKey, PSP_WEBHOOK_SECRET: webhookSecret, PSP_ERROR_5XX_RATE: '7' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const [code] = await once(child, 'exit')
  t.equal(code, 78)
  t.match(output, /PSP_ERROR_5XX_RATE/)
})
