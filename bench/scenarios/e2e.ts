// The `e2e` scenario: payments at a fixed arrival rate through the public nginx of a whole stack
// (nodes, relay, Kafka, processors, sandbox PSP, Postgres), measured from acceptance on the node
// (payments.created_at) to the terminal state in Postgres (payments.projected_at). The sandbox
// PSP's latency and fault rates come from flags. While it runs, the relay lag and the processors'
// consumer lag are sampled every second. Afterwards the end-to-end outcome check
// (bench/lib/system-outcome.ts) runs over every id sent; any lost, double-charged, mismatched or
// stuck payment makes the exit code 1. See bench/README.md.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { fastWatchdogEnv, spawnStack, type SpawnedStack } from '../../scripts/stack/spawn-stack.ts'
import { repoRoot } from '../../scripts/stack/util.ts'
import { choiceFlag, intFlag, numberFlag } from '../lib/args.ts'
import { renderChart } from '../lib/chart.ts'
import { describeMachine } from '../lib/machine.ts'
import { paymentMixes, startPaymentLoad, type PaymentMix } from '../lib/payment-load.ts'
import { PipelineLagProbe, type LagSample } from '../lib/pipeline-lag.ts'
import type { Scenario } from '../lib/scenario.ts'
import { percentileSorted } from '../lib/stats.ts'
import { formatInt, formatMs, renderTable } from '../lib/table.ts'
import { checkSystemOutcome, describeSystemOutcome } from '../lib/system-outcome.ts'
import { cpuShare, cpuSnapshot } from '../lib/cpu-usage.ts'
import { stackProcessGroups } from '../lib/stack-cpu.ts'

export const defaultRateRps = 500
export const rateRpsMax = 50_000
export const defaultDurationS = 20
export const durationSMax = 600
export const defaultPspLatencyMedianMs = 50
export const defaultPspLatencyP99Ms = 200
export const pspLatencyMsMax = 10_000
/** After the load: every payment terminal in Postgres within this, or the run fails. */
export const defaultSettleDeadlineS = 180
export const settleDeadlineSMax = 3_600
export const lagSampleIntervalMs = 1_000
export const loadConnections = 64
export const loadInflightMax = 4_096
export const processorsMax = 8
export const nodesMax = 16
/** The issue's target, reported (never asserted): p99 under 1 s at 2,000 payments/s. */
export const targetRateRps = 2_000
export const targetP99Ms = 1_000
export const processorGroupId = 'ringpay-processor'
export const pspConfigTimeoutMs = 10_000
export const terminalPollIntervalMs = 250

const usage = `usage: node bench/cli.ts e2e [flags]

Payments at a fixed arrival rate through a whole stack, accepted → terminal in Postgres, with
the sandbox PSP's latency and faults set by flags. Prints a table; writes results.json,
chart.svg and table.txt under bench/results/<timestamp>-e2e/. Exit 1 if the outcome check
finds a lost, double-charged, mismatched or non-terminal payment.

  --rate <n>                   arrival rate, payments/s (default ${defaultRateRps})
  --duration <s>               load duration (default ${defaultDurationS})
  --mix <name>                 payment methods: ${Object.keys(paymentMixes).join(', ')} (default visa)
  --psp-latency-median-ms <n>  sandbox PSP charge latency, lognormal (default ${defaultPspLatencyMedianMs})
  --psp-latency-p99-ms <n>     (default ${defaultPspLatencyP99Ms})
  --psp-5xx-rate <0..1>        share of charge calls answered 500/503 without charging (default 0)
  --psp-timeout-rate <0..1>    share charged and never answered (default 0)
  --psp-429-rate <0..1>        share answered 429 (default 0)
  --settle-deadline <s>        bound on the wait for terminal states (default ${defaultSettleDeadlineS})
  --stack-info <file>          use a running stack (scripts/stack.ts --info-file); otherwise one is
                               started (ephemeral) and stopped at the end:
  --nodes <n>                  payment nodes of the started stack (default 3)
  --processors <n>             processors of the started stack (default 1)
  --out <dir>                  results root (default bench/results)
`

interface E2eConfig {
  rateRps: number
  durationS: number
  mix: PaymentMix
  psp: { latencyMedianMs: number, latencyP99Ms: number, error5xxRate: number, timeoutAfterChargeRate: number, rateLimitRate: number }
  settleDeadlineS: number
  stackInfo?: string
  nodes: number
  processors: number
  outDir: string
}

function parseConfig (argv: string[]): E2eConfig {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      rate: { type: 'string' },
      duration: { type: 'string' },
      mix: { type: 'string' },
      'psp-latency-median-ms': { type: 'string' },
      'psp-latency-p99-ms': { type: 'string' },
      'psp-5xx-rate': { type: 'string' },
      'psp-timeout-rate': { type: 'string' },
      'psp-429-rate': { type: 'string' },
      'settle-deadline': { type: 'string' },
      'stack-info': { type: 'string' },
      nodes: { type: 'string' },
      processors: { type: 'string' },
      out: { type: 'string' },
    },
  })
  const latencyMedianMs = intFlag('--psp-latency-median-ms', v['psp-latency-median-ms'], defaultPspLatencyMedianMs, 0, pspLatencyMsMax)
  return {
    rateRps: intFlag('--rate', v.rate, defaultRateRps, 1, rateRpsMax),
    durationS: intFlag('--duration', v.duration, defaultDurationS, 1, durationSMax),
    mix: choiceFlag('--mix', v.mix, 'visa', Object.keys(paymentMixes) as PaymentMix[]),
    psp: {
      latencyMedianMs,
      latencyP99Ms: intFlag('--psp-latency-p99-ms', v['psp-latency-p99-ms'], Math.max(defaultPspLatencyP99Ms, latencyMedianMs), latencyMedianMs, pspLatencyMsMax),
      error5xxRate: numberFlag('--psp-5xx-rate', v['psp-5xx-rate'], 0, 0, 1),
      timeoutAfterChargeRate: numberFlag('--psp-timeout-rate', v['psp-timeout-rate'], 0, 0, 1),
      rateLimitRate: numberFlag('--psp-429-rate', v['psp-429-rate'], 0, 0, 1),
    },
    settleDeadlineS: intFlag('--settle-deadline', v['settle-deadline'], defaultSettleDeadlineS, 1, settleDeadlineSMax),
    ...(v['stack-info'] !== undefined ? { stackInfo: resolve(v['stack-info']) } : {}),
    nodes: intFlag('--nodes', v.nodes, 3, 1, nodesMax),
    processors: intFlag('--processors', v.processors, 1, 1, processorsMax),
    outDir: resolve(v.out ?? join(repoRoot, 'bench', 'results')),
  }
}

async function setPspConfig (stack: StackInfo, patch: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${stack.psp.url}/admin/config`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${stack.psp.secretKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(patch),
    signal: AbortSignal.timeout(pspConfigTimeoutMs),
  })
  if (res.status !== 200) throw new Error(`PSP PUT /admin/config: ${res.status} ${await res.text()}`)
}

/** Resolves when every id is terminal in Postgres, or at the deadline (the outcome check then says which are not). */
async function untilTerminal (databaseUrl: string, ids: readonly string[], deadlineMs: number): Promise<void> {
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  try {
    const deadline = performance.now() + deadlineMs
    while (performance.now() < deadline) {
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM payments WHERE checkout_id = ANY($1) AND status IN ('succeeded', 'failed', 'canceled')`, [ids])
      if (Number(rows[0]!.n) >= ids.length) return
      await new Promise((resolve) => setTimeout(resolve, terminalPollIntervalMs))
    }
  } finally {
    await db.end()
  }
}

interface Latencies { p50: number, p90: number, p99: number, p999: number, max: number }

function summarize (sortedMs: Float64Array): Latencies {
  return {
    p50: percentileSorted(sortedMs, 50),
    p90: percentileSorted(sortedMs, 90),
    p99: percentileSorted(sortedMs, 99),
    p999: percentileSorted(sortedMs, 99.9),
    max: sortedMs.length > 0 ? sortedMs[sortedMs.length - 1]! : NaN,
  }
}

async function run (argv: string[]): Promise<number> {
  const cfg = parseConfig(argv)
  const log = (line: string): void => { process.stderr.write(`[e2e] ${line}\n`) }
  const startedAt = new Date()
  let own: SpawnedStack | undefined
  if (cfg.stackInfo === undefined) {
    own = await spawnStack({ args: ['--nodes', String(cfg.nodes), '--processors', String(cfg.processors)], env: fastWatchdogEnv, log })
  }
  const stack = own?.info ?? JSON.parse(readFileSync(cfg.stackInfo!, 'utf8')) as StackInfo
  const probe = new PipelineLagProbe({
    brokers: stack.kafkaBrokers,
    nodeAdminOrigins: stack.nodes.map((n) => `http://127.0.0.1:${n.adminPort}`),
    topic: stack.topics.events,
    groupId: processorGroupId,
  })
  const lags: Array<LagSample & { second: number }> = []
  let sampling: NodeJS.Timeout | undefined
  try {
    await setPspConfig(stack, cfg.psp)
    const idPrefix = `e2e_${Date.now().toString(36)}_`
    // CPU of the stack's processes over the whole run (load and drain), per component.
    const groups = stackProcessGroups(stack.dir)
    const cpuBefore = cpuSnapshot(new Set(groups.keys()))
    const t0 = performance.now()
    const takeSample = (): void => {
      probe.sample().then((s) => { lags.push({ ...s, second: (performance.now() - t0) / 1000 }) }, () => {})
    }
    sampling = setInterval(takeSample, lagSampleIntervalMs)
    log(`${cfg.rateRps}/s for ${cfg.durationS} s through ${stack.publicUrl} (mix ${cfg.mix}, PSP ${JSON.stringify(cfg.psp)})`)
    const loadRun = startPaymentLoad({
      stack,
      idPrefix,
      rateRps: cfg.rateRps,
      durationS: cfg.durationS,
      mix: cfg.mix,
      connections: loadConnections,
      inflightMax: loadInflightMax,
      onProgress: (s, n) => log(`${s.toFixed(0)} s: ${n} answered`),
    })
    const { classes, load } = await loadRun.done
    log(`accepted ${classes.acked.length} of ${classes.sent} (${JSON.stringify(classes.answers)}); waiting for terminal states`)
    // The CPU window ends when every accepted payment is terminal, before the outcome check,
    // whose read-backs (every id on every node, the PSP's charges) are not the pipeline's work.
    const cpuAfter = await untilTerminal(stack.databaseUrl, classes.acked, cfg.settleDeadlineS * 1000)
      .then(() => cpuSnapshot(new Set(groups.keys())))
    log('checking the outcome')
    const outcome = await checkSystemOutcome({
      system: stack,
      acked: classes.acked,
      uncertain: classes.uncertain,
      refused: classes.refused,
      settleDeadlineMs: cfg.settleDeadlineS * 1000,
      onProgress: log,
    })
    clearInterval(sampling)
    sampling = undefined
    const cpu = cpuShare(cpuBefore, cpuAfter, groups)
    const loadEndS = load.durationS

    // Latency accepted → terminal, from the payments themselves.
    const db = new pg.Client({ connectionString: stack.databaseUrl })
    await db.connect()
    const rows = (await db.query<{ ms: number, created_s: number, terminal_s: number }>(
      `SELECT EXTRACT(EPOCH FROM projected_at - created_at) * 1000 AS ms,
              EXTRACT(EPOCH FROM created_at) AS created_s, EXTRACT(EPOCH FROM projected_at) AS terminal_s
       FROM payments WHERE checkout_id = ANY($1) AND status IN ('succeeded', 'failed', 'canceled')`, [classes.acked])).rows
    // Where the time goes, per payment, from its change events: occurred_at is the node's clock
    // when it wrote the change, recorded_at Postgres' when the projection stored it.
    const stageRows = (await db.query<Record<string, number | null>>(`
      SELECT
        EXTRACT(EPOCH FROM MAX(recorded_at) FILTER (WHERE type = 'payment.created') - MIN(occurred_at) FILTER (WHERE type = 'payment.created')) * 1000 AS to_postgres,
        EXTRACT(EPOCH FROM MIN(occurred_at) FILTER (WHERE status = 'processing') - MIN(occurred_at) FILTER (WHERE type = 'payment.created')) * 1000 AS to_processing,
        EXTRACT(EPOCH FROM MIN(occurred_at) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled') AND type = 'payment.status_changed')
                         - MIN(occurred_at) FILTER (WHERE status = 'processing')) * 1000 AS psp_and_transition,
        EXTRACT(EPOCH FROM MIN(recorded_at) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled') AND type = 'payment.status_changed')
                         - MIN(occurred_at) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled') AND type = 'payment.status_changed')) * 1000 AS terminal_to_postgres
      FROM payment_events WHERE checkout_id = ANY($1) GROUP BY checkout_id`, [classes.acked])).rows
    const stage = (key: string): Latencies => summarize(Float64Array.from(
      stageRows.map((r) => r[key]).filter((v): v is number => v !== null).map(Number)).sort())
    const stages = {
      'accepted → created event in Postgres (relay, Kafka, projection)': stage('to_postgres'),
      'accepted → processing on its node (consume, transition)': stage('to_processing'),
      'processing → terminal on its node (PSP call, transition)': stage('psp_and_transition'),
      'terminal on its node → in Postgres (relay, Kafka, projection)': stage('terminal_to_postgres'),
    }
    await db.end()
    const latency = summarize(Float64Array.from(rows.map((r) => Number(r.ms))).sort())
    const firstCreated = Math.min(...rows.map((r) => Number(r.created_s)))
    const lastTerminal = Math.max(...rows.map((r) => Number(r.terminal_s)))
    const sustainedRps = rows.length / Math.max(1e-3, lastTerminal - firstCreated)
    const bySecond = new Map<number, number[]>()
    const terminalPerSecond = new Map<number, number>()
    for (const r of rows) {
      const s = Math.floor(Number(r.created_s) - firstCreated)
      bySecond.set(s, [...(bySecond.get(s) ?? []), Number(r.ms)])
      const t = Math.floor(Number(r.terminal_s) - firstCreated)
      terminalPerSecond.set(t, (terminalPerSecond.get(t) ?? 0) + 1)
    }
    const latencySeries = [...bySecond.entries()].sort(([a], [b]) => a - b).map(([second, ms]) => {
      const sorted = Float64Array.from(ms).sort()
      return { second, p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99) }
    })
    const cpuMsPerPayment = Object.fromEntries(Object.entries(cpu.byComponent)
      .filter(([name]) => name !== 'bench' && name !== 'other')
      .map(([name, pct]) => [name, rows.length > 0 ? Math.round((pct / 100) * cpu.windowS * 1000 / rows.length * 100) / 100 : NaN]))
    const cpuMsPerPaymentTotal = Object.values(cpuMsPerPayment).reduce((a, b) => a + b, 0)
    const relayLagMax = Math.max(0, ...lags.map((l) => l.relayLagEvents))
    const relayLagSecondsMax = Math.max(0, ...lags.map((l) => l.relayLagSecondsMax))
    const consumerLagMax = Math.max(0, ...lags.map((l) => l.consumerLagMessages))
    const targetMet = cfg.rateRps >= targetRateRps && load.throughputRps >= 0.95 * targetRateRps && latency.p99 < targetP99Ms

    const table = [
      `e2e: ${cfg.rateRps} payments/s for ${cfg.durationS} s, mix ${cfg.mix}; PSP median ${cfg.psp.latencyMedianMs} ms, p99 ${cfg.psp.latencyP99Ms} ms, ` +
        `5xx ${cfg.psp.error5xxRate}, timeout-after-charge ${cfg.psp.timeoutAfterChargeRate}, 429 ${cfg.psp.rateLimitRate}; ` +
        `${stack.nodes.length} nodes, ${stack.processors.length} processor(s)`,
      '',
      renderTable(['', 'value'], [
        ['accepted (202)', `${formatInt(classes.acked.length)} of ${formatInt(classes.sent)} sent (${load.throughputRps.toFixed(0)}/s)`],
        ['accept latency p50 / p99', `${formatMs(load.latencyMs.p50)} / ${formatMs(load.latencyMs.p99)} ms`],
        ['terminal in Postgres', `${formatInt(rows.length)}; sustained ${sustainedRps.toFixed(0)}/s (first acceptance → last terminal)`],
        ['accepted → terminal p50 / p90', `${formatMs(latency.p50)} / ${formatMs(latency.p90)} ms`],
        ['accepted → terminal p99 / p99.9 / max', `${formatMs(latency.p99)} / ${formatMs(latency.p999)} / ${formatMs(latency.max)} ms`],
        ['relay lag max', `${formatInt(relayLagMax)} entries, oldest ${relayLagSecondsMax.toFixed(1)} s`],
        ['consumer lag max', `${formatInt(consumerLagMax)} messages`],
      ]),
      '',
      renderTable(['stage (p50 / p99 ms)', 'p50', 'p99'], Object.entries(stages).map(([name, l]) => [name, formatMs(l.p50), formatMs(l.p99)])),
      '',
      `stack CPU per terminal payment: ${cpuMsPerPaymentTotal.toFixed(2)} ms (${Object.entries(cpuMsPerPayment).map(([n, ms]) => `${n} ${ms.toFixed(2)}`).join(', ')}); ` +
        `machine busy ${cpu.machineBusyPct.toFixed(0)} % of ${cpu.cpus * 100} %, of which outside this stack and bench ${(cpu.byComponent.other ?? 0).toFixed(0)} %`,
      `at that cost the machine's ${cpu.cpus} CPUs sustain at most ~${Math.round((cpu.cpus * 1000) / cpuMsPerPaymentTotal)} payments/s end to end`,
      `target (p99 < ${targetP99Ms} ms at ${targetRateRps}/s): ${targetMet ? 'met' : `NOT met (this run: ${cfg.rateRps}/s, p99 ${formatMs(latency.p99)} ms)`}`,
      `outcome: ${describeSystemOutcome(outcome)}`,
    ].join('\n')
    process.stdout.write(`\n${table}\n`)

    const resultsDir = join(cfg.outDir, `${startedAt.toISOString().replaceAll(':', '-').slice(0, 19)}-e2e`)
    mkdirSync(resultsDir, { recursive: true })
    const svg = renderChart({
      title: `e2e: ${cfg.rateRps}/s for ${cfg.durationS} s, PSP median ${cfg.psp.latencyMedianMs} ms`,
      subtitle: `accepted ${classes.acked.length}, terminal ${rows.length}; p50 ${formatMs(latency.p50)} ms, p99 ${formatMs(latency.p99)} ms; outcome ${outcome.passed ? 'PASS' : 'FAIL'}`,
      xLabel: 'seconds since the first acceptance',
      panels: [
        {
          title: 'throughput',
          yLabel: 'payments/s',
          series: [
            { label: 'accepted/s', color: '#1f77b4', points: load.series.map((p) => ({ x: p.second, y: p.responses - p.non2xx })) },
            { label: 'terminal/s', color: '#2ca02c', points: [...terminalPerSecond.entries()].sort(([a], [b]) => a - b).map(([x, y]) => ({ x, y })) },
          ],
        },
        {
          title: 'accepted → terminal latency, by acceptance second',
          yLabel: 'ms',
          log: true,
          series: [
            { label: 'p50', color: '#ff7f0e', points: latencySeries.map((p) => ({ x: p.second, y: Math.max(1, p.p50) })) },
            { label: 'p99', color: '#d62728', points: latencySeries.map((p) => ({ x: p.second, y: Math.max(1, p.p99) })) },
          ],
        },
        {
          title: 'pipeline lag',
          yLabel: 'events / messages',
          series: [
            { label: 'relay lag (entries)', color: '#9467bd', points: lags.map((l) => ({ x: l.second, y: l.relayLagEvents })) },
            { label: 'consumer lag (messages)', color: '#8c564b', points: lags.map((l) => ({ x: l.second, y: l.consumerLagMessages })) },
          ],
        },
      ],
      legend: [
        { label: 'accepted/s', color: '#1f77b4' }, { label: 'terminal/s', color: '#2ca02c' },
        { label: 'latency p50', color: '#ff7f0e' }, { label: 'latency p99', color: '#d62728' },
        { label: 'relay lag', color: '#9467bd' }, { label: 'consumer lag', color: '#8c564b' },
      ],
    })
    writeFileSync(join(resultsDir, 'chart.svg'), svg)
    writeFileSync(join(resultsDir, 'table.txt'), `${table}\n`)
    writeFileSync(join(resultsDir, 'results.json'), JSON.stringify({
      scenario: 'e2e',
      startedAt,
      config: cfg,
      machine: describeMachine('nginx', 'wrk'),
      accept: { sent: classes.sent, acked: classes.acked.length, answers: classes.answers, throughputRps: load.throughputRps, latencyMs: load.latencyMs },
      endToEnd: { terminal: rows.length, sustainedRps, latencyMs: latency, bySecond: latencySeries, stages },
      cpu: { msPerPayment: cpuMsPerPayment, msPerPaymentTotal: cpuMsPerPaymentTotal, share: cpu },
      lag: { relayLagMax, relayLagSecondsMax, consumerLagMax, samples: lags },
      target: { rateRps: targetRateRps, p99Ms: targetP99Ms, met: targetMet },
      outcome,
      loadEndS,
    }, null, 2) + '\n')
    process.stdout.write(`results: ${relative(process.cwd(), resultsDir) || resultsDir}\n`)
    return outcome.passed ? 0 : 1
  } finally {
    if (sampling !== undefined) clearInterval(sampling)
    await probe.close()
    await own?.stop()
  }
}

export const scenario: Scenario = {
  name: 'e2e',
  summary: 'fixed arrival rate through the whole stack, accepted → terminal in Postgres, with the outcome check',
  usage,
  run,
}
