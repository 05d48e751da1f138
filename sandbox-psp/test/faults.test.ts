// Faults: the rule-based ones (5xx once, timeout after charge) and the random ones (500/503, 429,
// timeout after charge), each with "nothing charged" or "charged exactly once" checked in the
// admin view. Ends with a retry storm under every fault at once: still one charge per key.

import t from 'tap'
import { adminCharges, call, charge, chargeBody, eventually, setConfig, startPsp, stats, type Reply } from './helpers.ts'

const clientTimeoutMs = 300

t.test('pm_card_5xx_once: the first attempt answers 500 without charging; the retry charges', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody('pm_card_5xx_once')
  const first = await charge(psp, body)
  t.equal(first.status, 500)
  t.match(first.body.error, { type: 'api_error', code: 'internal_error' })
  t.same(await adminCharges(psp, body.reference), [], 'no charge after the 500')
  t.equal((await stats(psp)).charges.total, 0)

  const retry = await charge(psp, body)
  t.equal(retry.status, 201)
  t.equal(retry.body.status, 'succeeded')
  const replay = await charge(psp, body)
  t.equal(replay.status, 200, 'later attempts replay; the fault fired once')
  t.equal(replay.body.id, retry.body.id)
  t.equal((await adminCharges(psp, body.reference)).length, 1)
  t.match(await stats(psp), { rule5xxOnce: 1, keysWithMultipleCharges: 0, charges: { total: 1 } })
})

t.test('pm_card_timeout_after_charge: charged durably, never answered; the retry gets the same charge', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody('pm_card_timeout_after_charge')
  await t.rejects(charge(psp, body, { timeoutMs: clientTimeoutMs }), { code: 'UND_ERR_HEADERS_TIMEOUT' }, 'the client times out')
  const charged = await adminCharges(psp, body.reference)
  t.equal(charged.length, 1, 'the charge exists although no answer came')
  t.equal(charged[0].status, 'succeeded')

  const retry = await charge(psp, body)
  t.equal(retry.status, 200)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.equal(retry.body.id, charged[0].id, 'the same charge')
  t.equal((await adminCharges(psp, body.reference)).length, 1, 'exactly one charge')
  t.match(await stats(psp), { injectedTimeouts: 1, keysWithMultipleCharges: 0, charges: { total: 1 } })
})

t.test('a held response is dropped after timeoutHoldMs, without a byte', async (t) => {
  const psp = await startPsp(t, { runtime: { timeoutHoldMs: 100 } })
  const body = chargeBody('pm_card_timeout_after_charge')
  await t.rejects(charge(psp, body, { timeoutMs: 5_000 }), { code: 'UND_ERR_SOCKET' }, 'the socket is destroyed')
  t.equal((await stats(psp)).inFlight.heldResponses, 0)
})

t.test('random faults: 500/503 and 429 never charge; random timeouts charge once', async (t) => {
  const psp = await startPsp(t)
  const body = chargeBody()
  await setConfig(psp, { error5xxRate: 1, seed: 1 })
  const statuses = new Set<number>()
  for (let i = 0; i < 12; i++) {
    const reply = await charge(psp, body)
    statuses.add(reply.status)
    if (reply.status === 503) t.equal(reply.headers['retry-after'], '1')
  }
  t.same([...statuses].sort(), [500, 503], 'both server errors occur')

  await setConfig(psp, { error5xxRate: 0, rateLimitRate: 1 })
  const limited = await charge(psp, body)
  t.equal(limited.status, 429)
  t.match(limited.body.error, { type: 'rate_limit_error', code: 'rate_limited' })
  t.equal(limited.headers['retry-after'], '1')
  t.same(await adminCharges(psp, body.reference), [], 'no charge after any of them')

  await setConfig(psp, { rateLimitRate: 0, timeoutAfterChargeRate: 1 })
  await t.rejects(charge(psp, body, { timeoutMs: clientTimeoutMs }))
  await setConfig(psp, { timeoutAfterChargeRate: 0 })
  const retry = await charge(psp, body)
  t.equal(retry.status, 200)
  t.equal((await adminCharges(psp, body.reference)).length, 1)
  t.match(await stats(psp), { injected5xx: 12, injectedRateLimits: 1, injectedTimeouts: 1, keysWithMultipleCharges: 0 })
})

t.test('retry storm under every fault at once: exactly one charge per key', async (t) => {
  const psp = await startPsp(t)
  await setConfig(psp, {
    seed: 7,
    error5xxRate: 0.3,
    rateLimitRate: 0.1,
    timeoutAfterChargeRate: 0.3,
    latencyMedianMs: 2,
    latencyP99Ms: 20,
  })
  const keys = 20
  const attemptsMax = 40
  const results = await Promise.all(Array.from({ length: keys }, async () => {
    const body = chargeBody(Math.random() < 0.5 ? 'pm_card_visa' : 'pm_card_declined')
    for (let attempt = 1; attempt <= attemptsMax; attempt++) {
      let reply: Reply | undefined
      try {
        reply = await charge(psp, body, { timeoutMs: clientTimeoutMs })
      } catch {
        continue
      }
      if (reply.status === 200 || reply.status === 201) return { reference: body.reference, id: reply.body.id as string, attempt }
    }
    throw new Error(`no answer for ${body.reference} in ${attemptsMax} attempts`)
  }))
  for (const { reference, id } of results) {
    const charged = await adminCharges(psp, reference)
    t.equal(charged.length, 1, `one charge for ${reference}`)
    t.equal(charged[0]?.id, id, 'the one the client was finally told about')
  }
  const s = await stats(psp)
  t.equal(s.charges.total, keys)
  t.equal(s.keysWithMultipleCharges, 0)
  t.ok(s.injected5xx > 0 && s.injectedTimeouts > 0, `faults happened (${s.injected5xx} 5xx, ${s.injectedTimeouts} timeouts, ${s.injectedRateLimits} 429)`)
})

t.test('the concurrency bound answers 429 and forgets the key', async (t) => {
  const psp = await startPsp(t, { limits: { chargeRequestsInFlightMax: 1 }, runtime: { latencyMedianMs: 600 } })
  const slow = charge(psp, chargeBody())
  await eventually(async () => ((await stats(psp)).inFlight.chargeRequests === 1 ? true : undefined), 'the first request in flight')
  const body = chargeBody()
  const refused = await charge(psp, body)
  t.equal(refused.status, 429)
  t.equal(refused.headers['retry-after'], '1')
  t.equal((await slow).status, 201)
  t.equal((await charge(psp, body)).status, 201, 'the refused key is free to use')
  t.equal((await stats(psp)).concurrencyRejections, 1)
  const metrics = await call(`${psp.url}/metrics`)
  t.match(metrics.text, /psp_events_total\{event="concurrencyRejections"\} 1/)
})
