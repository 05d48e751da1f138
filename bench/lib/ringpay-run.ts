// One measured Ringpay run of the e2e bench: payments at a fixed arrival rate through the stack's
// public nginx, a long-polling checkout client per accepted payment (bench/lib/checkout-poller.ts),
// then the drain (every accepted payment terminal in Postgres, relay and consumer lag back to 0,
// bounded), the CPU of every component over load + drain, latencies (client-seen, Postgres,
// per stage) and the end-to-end outcome check (bench/lib/system-outcome.ts).

import pg from 'pg'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { CheckoutPoller, type PollerReport } from './checkout-poller.ts'
import { cpuShare, cpuSnapshot, type CpuShare } from './cpu-usage.ts'
import type { LoadResult } from './load.ts'
import { startPaymentLoad, type PaymentLoadClasses, type PaymentMix } from './payment-load.ts'
import type { LagSample, PipelineLagProbe } from './pipeline-lag.ts'
import { percentileSorted } from './stats.ts'
import { checkSystemOutcome, type SystemOutcomeReport } from './system-outcome.ts'
import { demoMerchantId } from '../../scripts/stack/api-keys.ts'

export const ringpayLoadConnections = 64
export const ringpayInflightMax = 4_096
export const lagSampleIntervalMs = 1_000
export const terminalPollIntervalMs = 250
const terminal = `('succeeded', 'failed', 'canceled')`

export interface Latencies { p50: number, p90: number, p99: number, p999: number, max: number }

export function summarize (sortedMs: ArrayLike<number>): Latencies {
  return {
    p50: percentileSorted(sortedMs, 50),
    p90: percentileSorted(sortedMs, 90),
    p99: percentileSorted(sortedMs, 99),
    p999: percentileSorted(sortedMs, 99.9),
    max: sortedMs.length > 0 ? sortedMs[sortedMs.length - 1]! : NaN,
  }
}

/** Latencies of `sent` requests of which `finishedMs` finished; the rest count as infinitely late. */
export function summarizeWithUnfinished (finishedMs: readonly number[] | Float64Array, sent: number): Latencies {
  const all = new Float64Array(Math.max(sent, finishedMs.length)).fill(Infinity)
  all.set(finishedMs)
  return summarize(all.sort())
}

export interface RingpayRun {
  classes: PaymentLoadClasses
  load: LoadResult
  client: PollerReport & { latencyMs: Latencies, finishedLatencyMs: Latencies }
  postgres: { terminal: number, latencyMs: Latencies, sustainedRps: number }
  bySecond: Array<{ second: number, p50: number, p99: number }>
  terminalPerSecond: Array<{ second: number, count: number }>
  stages: Record<string, Latencies>
  drain: { drained: boolean, allTerminal: boolean, relayLagEnd: number, consumerLagEnd: number, msAfterLoad: number }
  lag: { relayLagMax: number, relayLagSecondsMax: number, consumerLagMax: number, samples: Array<LagSample & { second: number }> }
  cpu: CpuShare
  outcome: SystemOutcomeReport
}

async function untilTerminal (db: pg.Client, ids: readonly string[], deadlineMs: number): Promise<boolean> {
  for (;;) {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM payments WHERE checkout_id = ANY($1) AND status IN ${terminal}`, [ids])
    if (Number(rows[0]!.n) >= ids.length) return true
    if (performance.now() >= deadlineMs) return false
    await new Promise((resolve) => setTimeout(resolve, terminalPollIntervalMs))
  }
}

async function untilLagZero (probe: PipelineLagProbe, deadlineMs: number): Promise<LagSample | undefined> {
  let last: LagSample | undefined
  for (;;) {
    last = await probe.sample().catch(() => last)
    if ((last !== undefined && last.relayLagEvents === 0 && last.consumerLagMessages === 0) || performance.now() >= deadlineMs) return last
    await new Promise((resolve) => setTimeout(resolve, terminalPollIntervalMs))
  }
}

export async function runRingpay (o: {
  stack: StackInfo
  probe: PipelineLagProbe
  /** Pid/process group → component, for the CPU window (the stack's, plus anything else to tell apart). */
  groups: ReadonlyMap<number, string>
  idPrefix: string
  rateRps: number
  durationS: number
  mix: PaymentMix
  pollWaitMs: number
  pollGiveUpMs: number
  /** After the load: terminal in Postgres and lags at 0 within this, or the run did not drain. */
  drainDeadlineS: number
  settleDeadlineS: number
  log: (line: string) => void
}): Promise<RingpayRun> {
  const poller = new CheckoutPoller({ publicUrl: o.stack.publicUrl, apiKey: o.stack.apiKeys.merchant_demo, waitMs: o.pollWaitMs, giveUpMs: o.pollGiveUpMs })
  const lags: Array<LagSample & { second: number }> = []
  const db = new pg.Client({ connectionString: o.stack.databaseUrl })
  await db.connect()
  const groupSet = new Set(o.groups.keys())
  const cpuBefore = cpuSnapshot(groupSet)
  const t0 = performance.now()
  const sampling = setInterval(() => {
    o.probe.sample().then((s) => { lags.push({ ...s, second: (performance.now() - t0) / 1000 }) }, () => {})
  }, lagSampleIntervalMs)
  try {
    const { classes, load } = await startPaymentLoad({
      stack: o.stack,
      idPrefix: o.idPrefix,
      rateRps: o.rateRps,
      durationS: o.durationS,
      mix: o.mix,
      connections: ringpayLoadConnections,
      inflightMax: ringpayInflightMax,
      onAccepted: (id, body, intendedMs) => poller.follow(id, body, intendedMs),
    }).done
    const loadEnd = performance.now()
    o.log(`accepted ${classes.acked.length} of ${classes.sent}; waiting for terminal states, the clients and the lags`)
    const deadline = loadEnd + o.drainDeadlineS * 1000
    const [allTerminal] = await Promise.all([untilTerminal(db, classes.acked, deadline), poller.settled()])
    const lagEnd = await untilLagZero(o.probe, deadline)
    const cpu = cpuShare(cpuBefore, cpuSnapshot(groupSet), o.groups)
    const msAfterLoad = performance.now() - loadEnd
    clearInterval(sampling)
    const seenEpochMs = poller.seenAtEpochMs
    const outcome = await checkSystemOutcome({
      // The load is merchant_demo's (payment-load.ts): its checkout ids.
      merchantId: demoMerchantId,
      system: o.stack, acked: classes.acked, uncertain: classes.uncertain, refused: classes.refused,
      settleDeadlineMs: o.settleDeadlineS * 1000, onProgress: o.log,
    })

    // Accepted → terminal in Postgres, from the payments themselves.
    const rows = (await db.query<{ ms: number, created_s: number, terminal_s: number }>(
      `SELECT EXTRACT(EPOCH FROM projected_at - created_at) * 1000 AS ms,
              EXTRACT(EPOCH FROM created_at) AS created_s, EXTRACT(EPOCH FROM projected_at) AS terminal_s
       FROM payments WHERE checkout_id = ANY($1) AND status IN ${terminal}`, [classes.acked])).rows
    const firstCreated = Math.min(...rows.map((r) => Number(r.created_s)))
    const lastTerminal = Math.max(...rows.map((r) => Number(r.terminal_s)))
    const bySecondMs = new Map<number, number[]>()
    const terminalPerSecond = new Map<number, number>()
    for (const r of rows) {
      const s = Math.floor(Number(r.created_s) - firstCreated)
      bySecondMs.set(s, [...(bySecondMs.get(s) ?? []), Number(r.ms)])
      const t = Math.floor(Number(r.terminal_s) - firstCreated)
      terminalPerSecond.set(t, (terminalPerSecond.get(t) ?? 0) + 1)
    }

    // Where the time goes, per payment: its change events (occurred_at: the node's clock when it
    // wrote the change; recorded_at: when the projection stored it), its PSP attempts, and when
    // its client saw it terminal.
    const stageRows = (await db.query<Record<string, number | string | null>>(`
      WITH ev AS (
        SELECT checkout_id,
          MIN(occurred_at) FILTER (WHERE type = 'payment.created') AS created_at,
          MAX(recorded_at) FILTER (WHERE type = 'payment.created') AS created_pg,
          MIN(occurred_at) FILTER (WHERE status IN ${terminal} AND type = 'payment.status_changed') AS terminal_at,
          MIN(recorded_at) FILTER (WHERE status IN ${terminal} AND type = 'payment.status_changed') AS terminal_pg
        FROM payment_events WHERE checkout_id = ANY($1) GROUP BY checkout_id),
      pa AS (
        SELECT checkout_id, MIN(started_at) AS psp_start, MAX(started_at + latency_ms * interval '1 millisecond') AS psp_end
        FROM psp_attempts WHERE checkout_id = ANY($1) GROUP BY checkout_id)
      SELECT ev.checkout_id,
        EXTRACT(EPOCH FROM created_pg - created_at) * 1000 AS to_postgres,
        EXTRACT(EPOCH FROM psp_start - created_at) * 1000 AS to_psp,
        EXTRACT(EPOCH FROM psp_end - psp_start) * 1000 AS psp_call,
        EXTRACT(EPOCH FROM terminal_at - psp_end) * 1000 AS write_back,
        EXTRACT(EPOCH FROM terminal_pg - terminal_at) * 1000 AS terminal_to_postgres,
        EXTRACT(EPOCH FROM terminal_at) * 1000 AS terminal_epoch_ms
      FROM ev LEFT JOIN pa USING (checkout_id)`, [classes.acked])).rows
    const stage = (values: Array<number | null | undefined>): Latencies =>
      summarize(Float64Array.from(values.filter((v): v is number => v !== null && v !== undefined && Number.isFinite(Number(v))).map(Number)).sort())
    const col = (key: string): Array<number | null> => stageRows.map((r) => (r[key] === null ? null : Number(r[key])))
    const stages: Record<string, Latencies> = {
      'accept: POST sent → 202 (client)': { p50: load.latencyMs.p50, p90: load.latencyMs.p90, p99: load.latencyMs.p99, p999: load.latencyMs.p999, max: load.latencyMs.max },
      // The processor's claim (pending → processing) is not published, so it has no timestamp here.
      'accepted → PSP call sent (relay, Kafka, consume, claim on its node)': stage(col('to_psp')),
      'PSP call (first attempt sent → last answered)': stage(col('psp_call')),
      'PSP answered → terminal on its node (write-back)': stage(col('write_back')),
      'terminal on its node → seen by the client (long-poll)': stage(stageRows.map((r) => {
        const seen = seenEpochMs.get(String(r.checkout_id))
        return seen === undefined || r.terminal_epoch_ms === null ? null : seen - Number(r.terminal_epoch_ms)
      })),
      'terminal on its node → in Postgres (relay, Kafka, projection)': stage(col('terminal_to_postgres')),
      'accepted → created event in Postgres (relay, Kafka, projection)': stage(col('to_postgres')),
    }
    const finished = [...poller.latencyMs.values()]
    return {
      classes,
      load,
      client: {
        ...poller.report,
        latencyMs: summarizeWithUnfinished(finished, classes.sent),
        finishedLatencyMs: summarize(Float64Array.from(finished).sort()),
      },
      postgres: {
        terminal: rows.length,
        latencyMs: summarize(Float64Array.from(rows.map((r) => Number(r.ms))).sort()),
        sustainedRps: rows.length / Math.max(1e-3, lastTerminal - firstCreated),
      },
      bySecond: [...bySecondMs.entries()].sort(([a], [b]) => a - b).map(([second, ms]) => {
        const sorted = Float64Array.from(ms).sort()
        return { second, p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99) }
      }),
      terminalPerSecond: [...terminalPerSecond.entries()].sort(([a], [b]) => a - b).map(([second, count]) => ({ second, count })),
      stages,
      drain: {
        drained: allTerminal && lagEnd !== undefined && lagEnd.relayLagEvents === 0 && lagEnd.consumerLagMessages === 0,
        allTerminal,
        relayLagEnd: lagEnd?.relayLagEvents ?? NaN,
        consumerLagEnd: lagEnd?.consumerLagMessages ?? NaN,
        msAfterLoad: Math.round(msAfterLoad),
      },
      lag: {
        relayLagMax: Math.max(0, ...lags.map((l) => l.relayLagEvents)),
        relayLagSecondsMax: Math.max(0, ...lags.map((l) => l.relayLagSecondsMax)),
        consumerLagMax: Math.max(0, ...lags.map((l) => l.consumerLagMessages)),
        samples: lags,
      },
      cpu,
      outcome,
    }
  } finally {
    clearInterval(sampling)
    await poller.close()
    await db.end().catch(() => {})
  }
}
