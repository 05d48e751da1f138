// Runs one fault under load and checks the invariants:
//   1. the load starts (a fixed arrival rate through the public nginx);
//   2. after a lead-in, the fault is injected, held, cleared — `repeats` times;
//   3. when the load is over: restore, then the outcome check (bench/lib/system-outcome.ts) over
//      every id sent: nothing acknowledged lost, at most one charge per checkout id, every payment
//      terminal within the settle bound and equal on node, Postgres and PSP, no version going down,
//      refused requests stored nowhere, a dead node's keys on no other node;
//   4. every service healthy again before the next fault.

import pg from 'pg'
import { checkSystemOutcome, type SystemOutcomeReport } from '../bench/lib/system-outcome.ts'
import { demoMerchantId } from '../scripts/stack/api-keys.ts'
import type { FaultContext, FaultKind } from './kinds.ts'
import { startPaymentLoad } from '../bench/lib/payment-load.ts'
import { callControl } from '../scripts/stack/control-client.ts'

/** How often readiness is polled after a fault. */
export const healthyPollIntervalMs = 250
export const healthProbeTimeoutMs = 2_000

export interface FaultRow {
  fault: string
  what: string
  /** Requests sent during the fault's load. */
  sent: number
  acked: number
  /** Acknowledged payments not yet terminal in Postgres when the (first) fault hit. */
  inFlightAtFault: number
  injected: number
  /** Answers by status (and problem code). */
  answers: Record<string, number>
  lost: number
  doubleCharges: number
  /** Node ≠ Postgres, node ≠ PSP, or not terminal by the deadline. */
  mismatches: number
  backwards: number
  /** Refused but stored, stored on the wrong node, or unexpected answers. */
  otherFailures: number
  /** From the later of the last clear and the end of the load until every payment was terminal
   *  in Postgres: how long the backlog the fault left behind takes to drain. */
  recoverMs: number
  passed: boolean
  failures: string[]
  outcome: SystemOutcomeReport
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function inFlight (databaseUrl: string, acked: readonly string[]): Promise<number> {
  if (acked.length === 0) return 0
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM payments WHERE checkout_id = ANY($1) AND status IN ('succeeded', 'failed', 'canceled')`, [acked])
    return acked.length - Number(rows[0]!.n)
  } finally {
    await client.end()
  }
}

/** Every node ready, every managed service running, the PSP healthy. */
export async function waitHealthy (ctx: FaultContext, deadlineMs: number): Promise<void> {
  const deadline = performance.now() + deadlineMs
  let last = ''
  while (performance.now() < deadline) {
    const problems: string[] = []
    const services = await callControl<{ services: Array<{ name: string, running: boolean, external?: boolean }> }>(
      ctx.stack, '/services', 'GET', undefined, { timeoutMs: healthProbeTimeoutMs })
      .catch(() => ({ services: [{ name: 'control API', running: false, external: false }] }))
    for (const s of services.services) if (!s.running && s.external !== true) problems.push(`${s.name} not running`)
    for (const node of ctx.stack.nodes) {
      const res = await fetch(`http://127.0.0.1:${node.adminPort}/readyz`, { signal: AbortSignal.timeout(healthProbeTimeoutMs) }).catch(() => undefined)
      await res?.body?.cancel()
      if (res?.status !== 200) problems.push(`${node.id} not ready (${res?.status ?? 'no answer'})`)
    }
    if (problems.length === 0) return
    last = problems.join(', ')
    await sleep(healthyPollIntervalMs)
  }
  throw new Error(`stack not healthy within ${deadlineMs} ms: ${last}`)
}

export async function runFault (kind: FaultKind, ctx: FaultContext, runId: string): Promise<FaultRow> {
  const { profile } = ctx
  const holdMs = kind.holdMs(profile)
  const cyclesMs = profile.leadInMs + profile.repeats * (holdMs + profile.gapMs) + (kind.tailMs?.(profile) ?? 0)
  const durationS = Math.max(profile.loadS, Math.ceil(cyclesMs / 1000) + 1)
  await kind.prepare?.(ctx)
  ctx.log(`${kind.name}: ${profile.rateRps}/s for ${durationS} s; ${profile.repeats} × (${holdMs} ms fault + ${profile.gapMs} ms)`)
  const load = startPaymentLoad({
    stack: ctx.stack,
    idPrefix: `flt_${kind.name.replaceAll('-', '_')}_${runId}_`,
    rateRps: profile.rateRps,
    durationS,
    mix: kind.mix,
  })
  // Awaited below; handled here so a failure during the fault's cycles is not "unhandled".
  load.done.catch(() => {})
  await sleep(profile.leadInMs)
  const inFlightAtFault = await inFlight(ctx.stack.databaseUrls.readonly, load.result.acked)
  let injected = 0
  let clearedAt = performance.now()
  for (let i = 0; i < profile.repeats; i++) {
    await kind.inject(ctx)
    injected++
    await sleep(holdMs)
    await kind.clear(ctx)
    clearedAt = performance.now()
    if (i < profile.repeats - 1) await sleep(profile.gapMs)
  }
  const { classes: result } = await load.done
  const loadEndedAt = performance.now()
  await kind.restore?.(ctx)
  ctx.log(`${kind.name}: load done (${JSON.stringify(result.answers)}); checking`)
  const checkStartedAt = performance.now()
  const outcome = await checkSystemOutcome({
    // The load is merchant_demo's (payment-load.ts): its checkout ids.
    merchantId: demoMerchantId,
    system: ctx.stack,
    acked: result.acked,
    uncertain: result.uncertain,
    refused: result.refused,
    settleDeadlineMs: profile.settleDeadlineMs,
  })
  const recoverMs = Math.max(0, checkStartedAt + outcome.settleMs - Math.max(clearedAt, loadEndedAt))
  const unmet = [...(kind.expect?.(result) ?? []), ...(await kind.verify?.(ctx, result) ?? [])]
  const failures = [
    ...unmet,
    ...result.unexpected.map((u) => `unexpected answer ${u.status} for ${u.id}: ${u.body}`),
    ...Object.entries(outcome.examples).filter(([k]) => k !== 'flagged').flatMap(([k, list]) => list.map((e) => `${k}: ${e}`)),
  ]
  await waitHealthy(ctx, profile.healthyDeadlineMs)
  const row: FaultRow = {
    fault: kind.name,
    what: kind.what,
    sent: result.sent,
    acked: result.acked.length,
    inFlightAtFault,
    injected,
    answers: result.answers,
    lost: outcome.lost,
    doubleCharges: outcome.doubleCharges,
    mismatches: outcome.nodeVsPostgres + outcome.nodeVsPsp + outcome.notTerminal,
    backwards: outcome.backwards,
    otherFailures: outcome.refusedStored + outcome.duplicated + outcome.checkErrors + result.unexpected.length + unmet.length,
    recoverMs: Math.round(recoverMs),
    passed: outcome.passed && failures.length === 0,
    failures,
    outcome,
  }
  return row
}
