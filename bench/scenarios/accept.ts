// The `accept` scenario: POST /payments load through ONE nginx (rendered by the stack's
// generator, scripts/stack/nginx.ts), three targets behind their own nginx server ports with the
// same proxy settings (upstream keepalive, consistent hash on X-PAYMENT-CHECKOUT-ID):
//   (a) noop    no-op Node servers answering 202 after reading the body: the ceiling;
//   (b) naive   the same API shape, one Postgres INSERT per request (pg Pool 10, synchronous_commit on);
//   (c) ringpay the payment nodes (payment-svc/main.ts), each with a fresh LevelDB dir;
//   (d) probe   the issue's 30-line group-commit probe (bench/targets/probe-server.ts): node:http,
//               one fsynced classic-level put per request, nothing else: the floor of (c)'s design.
// Targets are measured interleaved (a, b, c, d, a, b, c, d, …) and the medians over rounds reported.
// Afterwards every id acknowledged (202) by (c) is read back on the nodes (lost / duplicated
// must be 0, else exit code 1); (b)'s acknowledged ids are checked in Postgres the same way.
// See bench/README.md.

import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { internalServicesSetting, newInternalTokens } from '../../lib/internal-credentials.ts'
import { demoApiKey, demoMerchantId, writeApiKeysFile } from '../../scripts/stack/api-keys.ts'
import { benchAbuseLimits, createNginx, findNginx } from '../../scripts/stack/nginx.ts'
import { createPaymentNodes, nodeId, type PaymentNodeSpec } from '../../scripts/stack/payment-nodes.ts'
import { ensureFieldKeysFile } from '../../scripts/stack/field-keys.ts'
import { pickFreePorts } from '../../scripts/stack/ports.ts'
import { createPostgres } from '../../scripts/stack/postgres.ts'
import type { ManagedProcess } from '../../scripts/stack/proc.ts'
import { errorMessage, repoRoot, say } from '../../scripts/stack/util.ts'
import { choiceFlag, intFlag, UsageError } from '../lib/args.ts'
import { renderChart, type LineSeries } from '../lib/chart.ts'
import { renderProfileSummary, summarizeCpuProfileFile, type ProfileSummary, type TimeWindowUs } from '../lib/cpu-profile.ts'
import type { LoadMode, LoadResult, LoadTarget } from '../lib/load.ts'
import { cpuShare, cpuSnapshot, type CpuShare, type CpuSnapshot } from '../lib/cpu-usage.ts'
import { describeMachine, probeFsync, type FsyncProbe } from '../lib/machine.ts'
import { groupCommitStats, scrapeGroupCommit, type GroupCommitStats } from '../lib/node-metrics.ts'
import { runOpenLoop } from '../lib/open-loop.ts'
import { foreignCpuWarnPct, waitForQuiet as waitForQuietMachine, waitIdleSMax } from '../lib/wait-idle.ts'
import { checkNodesOutcome, checkStoresOutcome, distinctIds, type OutcomeReport } from '../lib/outcome.ts'
import type { Scenario } from '../lib/scenario.ts'
import { BenchSession } from '../lib/session.ts'
import { median } from '../lib/stats.ts'
import { formatInt, formatMs, renderTable } from '../lib/table.ts'
import { findWrk, runWrk } from '../lib/wrk.ts'
import { countNaiveRows, createNaiveTable, dropBenchTable, serverVersion } from '../targets/naive-schema.ts'
import { createNaiveProcess, createNoopProcess, createProbeProcess } from '../targets/processes.ts'

export const defaultDurationS = 10
export const durationSMax = 600
export const defaultRounds = 3
export const roundsMax = 20
export const defaultConnections = 64
export const connectionsMax = 4_096
export const defaultThreads = 2
export const threadsMax = 64
/** Unmeasured load on each target before round 1 (JIT, connection pools, caches). */
export const defaultWarmupS = 2
export const warmupSMax = 60
/** Open loop: arrival rate per target. */
export const defaultRateRps = 5_000
export const rateRpsMax = 200_000
/** Open loop: outstanding requests at most (past it, due requests are dropped and counted). */
export const defaultInflightMax = 1_024
export const inflightMaxLimit = 65_536
/**
 * Distinct acknowledged ids of (c) read back through the live nodes' API at most (a uniform random
 * sample above it; 0 = all). ~3 GETs per id at a few thousand per second on 2 cores; every id is
 * checked in the stores after shutdown anyway.
 */
export const defaultVerifyMax = 20_000
export const verifyMaxLimit = 10_000_000
/** Pause between two measured runs, so one target's tail does not land in the next one's run. */
export const interRunPauseMs = 1_000
export const defaultPaymentNodes = 3
export const defaultNoopNodes = 3
export const defaultNaiveNodes = 1
export const defaultProbeNodes = 3
export const processesMax = 16
export const defaultNginxWorkers = 1
export const nginxWorkersMax = 64
/** Rows of each profile summary table. */
export const profileTopRows = 30

/** The issue's targets for (c); reported, never asserted by the tests. */
export const goals = {
  cOverA: 0.85,
  cOverB: 2,
  p99Ms: 10,
  p99AtConnections: 64,
} as const

type TargetKey = 'a' | 'b' | 'c' | 'd'
const targetKeys: readonly TargetKey[] = ['a', 'b', 'c', 'd']

interface TargetDef {
  key: TargetKey
  name: 'noop' | 'naive' | 'ringpay' | 'probe'
  label: string
  color: string
  processes: number
  nginxPort: number
  /** host:port of each upstream server, in order. */
  servers: string[]
}

interface AcceptConfig {
  mode: LoadMode
  durationS: number
  rounds: number
  connections: number
  threads: number
  rateRps: number
  inflightMax: number
  warmupS: number
  nginxWorkers: number
  paymentNodes: number
  noopNodes: number
  naiveNodes: number
  probeNodes: number
  targets: TargetKey[]
  record: boolean
  verifyMax: number
  profileNode: boolean
  waitIdleS: number
  outDir: string
  keepTemp: boolean
}

const options = {
  mode: { type: 'string' },
  duration: { type: 'string' },
  rounds: { type: 'string' },
  connections: { type: 'string' },
  threads: { type: 'string' },
  rate: { type: 'string' },
  'inflight-max': { type: 'string' },
  warmup: { type: 'string' },
  'nginx-workers': { type: 'string' },
  nodes: { type: 'string' },
  'noop-nodes': { type: 'string' },
  'naive-nodes': { type: 'string' },
  'probe-nodes': { type: 'string' },
  targets: { type: 'string' },
  'no-record': { type: 'boolean', default: false },
  'verify-max': { type: 'string' },
  'profile-node': { type: 'boolean', default: false },
  'wait-idle': { type: 'string' },
  out: { type: 'string' },
  'keep-temp': { type: 'boolean', default: false },
} as const

const usage = `usage: node bench/cli.ts accept [flags]

POST /payments load through one nginx (worker_processes ${defaultNginxWorkers} unless --nginx-workers) to four
targets, measured interleaved: (a) no-op Node servers (the ceiling), (b) naive one-INSERT-per-request
Postgres server, (c) the payment nodes, (d) the bare group-commit probe (node:http + one fsynced
classic-level put per request: the floor of (c)'s design). Prints a table; writes results.json, chart.svg and table.txt
under bench/results/<timestamp>-accept/. Exit 1 if an id acknowledged by (b) or (c) is lost or duplicated.

load:
  --mode closed|open       closed: wrk -t<threads> -c<connections> -d<duration>s (default)
                           open: fixed arrival rate (Node generator), latency from intended send time
  --duration <s>           measured seconds per target per round (default ${defaultDurationS}, max ${durationSMax})
  --rounds <n>             interleaved rounds; medians are reported (default ${defaultRounds}, max ${roundsMax})
  --connections <n>        connections to nginx (default ${defaultConnections})
  --threads <n>            wrk threads (closed loop; default ${defaultThreads})
  --rate <req/s>           open loop arrival rate per target (default ${defaultRateRps})
  --inflight-max <n>       open loop bound on outstanding requests (default ${defaultInflightMax})
  --warmup <s>             unmeasured load per target before round 1 (default ${defaultWarmupS}; 0 = none)
  --no-record              closed loop without wrk's response() callback: measures the recorder's
                           overhead; no latency-over-time series, no outcome check

topology:
  --targets a,b,c,d        which targets to run (default all)
  --nginx-workers <n>      nginx worker_processes (default ${defaultNginxWorkers})
  --nodes <n>              payment nodes for (c) (default ${defaultPaymentNodes})
  --noop-nodes <n>         no-op servers for (a) (default ${defaultNoopNodes}, mirrors (c))
  --naive-nodes <n>        naive servers for (b), each with a pg Pool of 10 (default ${defaultNaiveNodes})
  --probe-nodes <n>        group-commit probes for (d) (default ${defaultProbeNodes}, mirrors (c))
  DATABASE_URL             use this Postgres for (b) (a table per run, dropped at the end)
                           instead of starting one in the run's temp dir

checks and output:
  --verify-max <n>         read back at most n acknowledged ids of (c) through the live nodes' API,
                           a uniform random sample above it (default ${defaultVerifyMax}; 0 = all); after
                           the nodes stopped, ALL ids are looked up in their LevelDB stores anyway
  --profile-node           run payment node n1 with --cpu-prof; summary in profile-n1.txt (skips the
                           live read-back, which would land in the profile; use with --targets c)
  --wait-idle <s>          before starting and before each measured run, wait up to s seconds until
                           processes the bench did not start use < ${foreignCpuWarnPct} % of a core (default 0:
                           never wait; runs skewed by other load are flagged * either way)
  --out <dir>              results root (default bench/results)
  --keep-temp              keep the run's temp dir (logs, LevelDB dirs, Postgres)
`

function parseConfig (argv: string[]): AcceptConfig {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  const targets = (v.targets ?? 'a,b,c,d').split(',').map((t) => t.trim()).filter((t) => t !== '')
  for (const t of targets) if (!(targetKeys as readonly string[]).includes(t)) throw new UsageError(`--targets: unknown target ${JSON.stringify(t)} (a, b, c, d)`)
  if (targets.length === 0) throw new UsageError('--targets names no target')
  const mode = choiceFlag('mode', v.mode, 'closed', ['closed', 'open'] as const)
  const record = !v['no-record']
  if (!record && mode === 'open') throw new UsageError('--no-record applies to the closed loop only')
  return {
    mode,
    durationS: intFlag('duration', v.duration, defaultDurationS, 1, durationSMax),
    rounds: intFlag('rounds', v.rounds, defaultRounds, 1, roundsMax),
    connections: intFlag('connections', v.connections, defaultConnections, 1, connectionsMax),
    threads: intFlag('threads', v.threads, defaultThreads, 1, threadsMax),
    rateRps: intFlag('rate', v.rate, defaultRateRps, 1, rateRpsMax),
    inflightMax: intFlag('inflight-max', v['inflight-max'], defaultInflightMax, 1, inflightMaxLimit),
    warmupS: intFlag('warmup', v.warmup, defaultWarmupS, 0, warmupSMax),
    nginxWorkers: intFlag('nginx-workers', v['nginx-workers'], defaultNginxWorkers, 1, nginxWorkersMax),
    paymentNodes: intFlag('nodes', v.nodes, defaultPaymentNodes, 1, processesMax),
    noopNodes: intFlag('noop-nodes', v['noop-nodes'], defaultNoopNodes, 1, processesMax),
    naiveNodes: intFlag('naive-nodes', v['naive-nodes'], defaultNaiveNodes, 1, processesMax),
    probeNodes: intFlag('probe-nodes', v['probe-nodes'], defaultProbeNodes, 1, processesMax),
    targets: targetKeys.filter((k) => targets.includes(k)),
    record,
    verifyMax: intFlag('verify-max', v['verify-max'], defaultVerifyMax, 0, verifyMaxLimit),
    profileNode: v['profile-node'] === true,
    waitIdleS: intFlag('wait-idle', v['wait-idle'], 0, 0, waitIdleSMax),
    outDir: resolve(v.out ?? join(repoRoot, 'bench', 'results')),
    keepTemp: v['keep-temp'] === true,
  }
}

/** 20261123-145501 (UTC), sortable and safe in paths. */
function timestamp (date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
}

interface RunRecord {
  round: number
  target: TargetKey
  result: Omit<LoadResult, 'ackedIds'>
  acked: number
  /** CPU by component over the run's steady window. */
  cpu: CpuShare | undefined
  /** (c) only: group commit over the run, from the nodes' /metrics. */
  groupCommit: GroupCommitStats | undefined
  /** Processes the bench did not start used ≥ foreignCpuWarnPct of a core during the run. */
  skewed: boolean
}

interface TargetSummary {
  key: TargetKey
  name: string
  label: string
  processes: number
  runs: number
  throughputRps: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  non2xx: number
  errors: number
  roundThroughputRps: number[]
  skewedRounds: number[]
  /** CPU time of the target's own processes ((b): with Postgres) per 2xx answer, median over rounds. */
  targetCpuUsPerRequest: number
  nginxCpuUsPerRequest: number
  /** Median over rounds, % of one CPU. */
  cpu: Record<string, number>
  groupCommit: { meanBatchSize: number, meanBatchWriteMs: number, batchesPerS: number, diskBusyPct: number } | undefined
}

interface Outcomes {
  /** (c) read back through the live nodes' admin API (a sample above --verify-max). */
  c?: OutcomeReport
  /** (c) every id in every node's store, after the nodes stopped. */
  cStore?: OutcomeReport
  b?: NaiveOutcome
}

interface NaiveOutcome {
  target: 'b'
  acked: number
  distinct: number
  checked: number
  lost: number
  duplicated: number
  method: string
  passed: boolean
}

function summarize (def: TargetDef, runs: RunRecord[]): TargetSummary {
  const mine = runs.filter((r) => r.target === def.key)
  const errorsOf = (r: RunRecord): number => Object.values(r.result.errors).reduce((a, b) => a + b, 0)
  return {
    key: def.key,
    name: def.name,
    label: def.label,
    processes: def.processes,
    runs: mine.length,
    throughputRps: median(mine.map((r) => r.result.throughputRps)),
    p50Ms: median(mine.map((r) => r.result.latencyMs.p50)),
    p99Ms: median(mine.map((r) => r.result.latencyMs.p99)),
    p999Ms: median(mine.map((r) => r.result.latencyMs.p999)),
    non2xx: mine.reduce((sum, r) => sum + r.result.non2xx, 0),
    errors: mine.reduce((sum, r) => sum + errorsOf(r), 0),
    roundThroughputRps: mine.map((r) => r.result.throughputRps),
    skewedRounds: mine.filter((r) => r.skewed).map((r) => r.round),
    targetCpuUsPerRequest: median(mine.map((r) => cpuUsPerRequest(r, targetComponents[def.key]))),
    nginxCpuUsPerRequest: median(mine.map((r) => cpuUsPerRequest(r, ['nginx']))),
    cpu: medianRecord(mine.flatMap((r) => (r.cpu ? [{ ...r.cpu.byComponent, machine: r.cpu.machineBusyPct }] : []))),
    groupCommit: mine.some((r) => r.groupCommit)
      ? {
          meanBatchSize: median(mine.map((r) => r.groupCommit?.meanBatchSize ?? Number.NaN)),
          meanBatchWriteMs: median(mine.map((r) => r.groupCommit?.meanBatchWriteMs ?? Number.NaN)),
          batchesPerS: median(mine.map((r) => r.groupCommit?.batchesPerS ?? Number.NaN)),
          diskBusyPct: median(mine.map((r) => r.groupCommit?.diskBusyPct ?? Number.NaN)),
        }
      : undefined,
  }
}

/** The CPU components that are the target itself. */
const targetComponents: Record<TargetKey, string[]> = {
  a: ['noop servers'],
  b: ['naive servers', 'postgres'],
  c: ['payment nodes'],
  d: ['probe servers'],
}

/** µs of CPU per 2xx answer: % of one core × 10⁴ / (answers per second). */
function cpuUsPerRequest (r: RunRecord, components: string[]): number {
  if (r.cpu === undefined || !(r.result.throughputRps > 0)) return Number.NaN
  const pct = components.reduce((sum, c) => sum + (r.cpu?.byComponent[c] ?? 0), 0)
  return (pct * 1e4) / r.result.throughputRps
}

function medianRecord (records: Array<Record<string, number>>): Record<string, number> {
  const keys = [...new Set(records.flatMap((r) => Object.keys(r)))]
  return Object.fromEntries(keys.map((k) => [k, median(records.map((r) => r[k] ?? 0))]))
}

/** Start and end of the steady window inside a run of `durationS`, in ms after its start. */
export function steadyWindowMs (durationS: number): [number, number] {
  const ms = durationS * 1000
  return ms >= 3_000 ? [1_000, ms - 500] : [ms * 0.2, ms * 0.8]
}

const roundDashes = ['', '7 4', '2 3', '10 3 2 3', '1 2']

async function runAccept (argv: string[]): Promise<number> {
  const cfg = parseConfig(argv)
  const startedAt = new Date()
  const nginxBin = findNginx()
  const wrkBin = cfg.mode === 'closed' ? findWrk() : 'wrk'
  const session = new BenchSession({ keepTemp: cfg.keepTemp })
  session.installSignalHandlers()
  const log = (message: string): void => say('accept', message)
  const resultsDir = join(cfg.outDir, `${timestamp(startedAt)}-accept`)
  try {
    return await execute(cfg, session, startedAt, resultsDir, nginxBin, wrkBin, log)
  } catch (error) {
    if (session.interrupted) return 130
    session.keepTemp()
    log(`failed; the temp dir (logs, data) is kept for diagnosis: ${session.tempDir}`)
    throw error
  } finally {
    await session.close()
    // A run that wrote no results leaves no empty results dir behind.
    if (existsSync(resultsDir) && !existsSync(join(resultsDir, 'results.json'))) rmSync(resultsDir, { recursive: true, force: true })
  }
}

async function execute (cfg: AcceptConfig, session: BenchSession, startedAt: Date, resultsDir: string, nginxBin: string,
  wrkBin: string, log: (message: string) => void): Promise<number> {
  const tmp = session.tempDir
  const logsDir = join(tmp, 'logs')
  mkdirSync(logsDir, { recursive: true })
  mkdirSync(resultsDir, { recursive: true })
  // n1 writes its CPU profile here when it exits (at close()), so it outlives the temp dir.
  const profileDir = join(resultsDir, 'profile')
  const machine = describeMachine(nginxBin, wrkBin)
  const runTag = randomBytes(3).toString('hex')
  // Process group → component, for CPU accounting (each managed process leads its own group).
  const groupNames = new Map<number, string>()
  /** With --wait-idle: waits (bounded) until other load on the machine is gone. */
  const waitForQuiet = (what: string): Promise<number> =>
    waitForQuietMachine({ groupNames, waitIdleS: cfg.waitIdleS, what, log, signal: session.signal })
  const foreignBeforePct = await waitForQuiet('starting')
  const fsync = probeFsync(tmp)
  log(`disk: write+fsync of 4 KiB p50 ${formatMs(fsync.p50Ms)} ms, p99 ${formatMs(fsync.p99Ms)} ms (idle disk ≈ 0.12 ms)`)
  if (foreignBeforePct >= foreignCpuWarnPct) {
    log(`WARNING: other processes use ${Math.round(foreignBeforePct)} % of a core before the bench starts: figures will be skewed`)
  }
  const want = (k: TargetKey): boolean => cfg.targets.includes(k)
  log(`run ${runTag}: ${cfg.mode} loop, targets ${cfg.targets.join(',')}, ${cfg.rounds} round(s) × ${cfg.durationS} s, ` +
    `${cfg.connections} connections${cfg.mode === 'open' ? `, ${cfg.rateRps} req/s` : ''}; temp ${tmp}`)

  // Ports: nginx (c, internal, a, b, d), payment nodes (public + admin), no-op, naive, probe, Postgres.
  const portCount = 5 + 2 * cfg.paymentNodes + cfg.noopNodes + cfg.naiveNodes + cfg.probeNodes + 1
  const ports = await pickFreePorts(portCount)
  const take = (): number => {
    const p = ports.shift()
    if (p === undefined) throw new Error('ran out of picked ports')
    return p
  }
  const nginxPorts = { c: take(), internal: take(), a: take(), b: take(), d: take() }
  const nodeSpecs: PaymentNodeSpec[] = Array.from({ length: cfg.paymentNodes }, (_, i) => {
    const id = nodeId(i)
    return {
      id,
      publicPort: take(),
      adminPort: take(),
      dataDir: join(tmp, 'nodes', id, 'data'),
      logFile: join(logsDir, `${id}.log`),
      ...(cfg.profileNode && i === 0 ? { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } } : {}),
    }
  })
  const noopPorts = Array.from({ length: cfg.noopNodes }, take)
  const naivePorts = Array.from({ length: cfg.naiveNodes }, take)
  const probePorts = Array.from({ length: cfg.probeNodes }, take)
  const postgresPort = take()

  const defs: Record<TargetKey, TargetDef> = {
    a: { key: 'a', name: 'noop', label: `(a) no-op ×${cfg.noopNodes}`, color: '#4c78a8', processes: cfg.noopNodes, nginxPort: nginxPorts.a, servers: noopPorts.map((p) => `127.0.0.1:${p}`) },
    b: { key: 'b', name: 'naive', label: `(b) naive pg ×${cfg.naiveNodes}`, color: '#e45756', processes: cfg.naiveNodes, nginxPort: nginxPorts.b, servers: naivePorts.map((p) => `127.0.0.1:${p}`) },
    c: { key: 'c', name: 'ringpay', label: `(c) ringpay ×${cfg.paymentNodes}`, color: '#54a24b', processes: cfg.paymentNodes, nginxPort: nginxPorts.c, servers: nodeSpecs.map((n) => `127.0.0.1:${n.publicPort}`) },
    d: { key: 'd', name: 'probe', label: `(d) probe ×${cfg.probeNodes}`, color: '#b279a2', processes: cfg.probeNodes, nginxPort: nginxPorts.d, servers: probePorts.map((p) => `127.0.0.1:${p}`) },
  }
  const targets = cfg.targets.map((k) => defs[k])

  const apiKeysFile = join(tmp, 'api-keys.json')
  writeApiKeysFile(apiKeysFile)
  // The nodes seal payment methods, customer refs and metadata at rest like the stack's (issue #17 part 7).
  const fieldKeysFile = join(tmp, 'field-keys.json')
  ensureFieldKeysFile(fieldKeysFile, null)
  // Each internal caller its own token; the outcome check reads with the read-only one.
  const internalTokens = newInternalTokens()

  // --- start everything: Postgres, no-op servers and payment nodes together; then naive; then nginx.
  const starts: Array<Promise<void>> = []
  const procs = (list: ManagedProcess[], phase: number): void => {
    for (const p of list) session.onStop(p.name, phase, () => p.stop())
  }
  const nameGroups = (list: Array<{ status: () => { pid: number | null } }>, name: string): void => {
    for (const p of list) {
      const pid = p.status().pid
      if (pid !== null) groupNames.set(pid, name)
    }
  }
  let databaseUrl: string | undefined
  let postgresVersion: string | undefined
  let databaseExternal = false
  const naiveTable = `bench_accept_${runTag}`
  if (want('b')) {
    const postgres = createPostgres({ dir: join(tmp, 'postgres'), port: postgresPort, logFile: join(logsDir, 'postgres.log') })
    databaseExternal = postgres.external
    if (!postgres.external) session.onStop('postgres', 3, () => postgres.stop())
    starts.push((async () => {
      await postgres.start()
      if (!postgres.external) nameGroups([postgres], 'postgres')
      databaseUrl = postgres.databaseUrl
      await createNaiveTable(databaseUrl, naiveTable)
      // On a shared DATABASE_URL the table goes; a temp Postgres goes with the temp dir.
      if (postgres.external) session.onStop('naive table', 2, () => dropBenchTable(postgres.databaseUrl, naiveTable))
      postgresVersion = await serverVersion(databaseUrl)
      log(`postgres ${postgresVersion} ready${postgres.external ? ' (DATABASE_URL)' : ''}, table ${naiveTable}`)
    })())
  }
  if (want('a')) {
    const noops = noopPorts.map((port, i) => createNoopProcess({ name: `noop${i + 1}`, port, logFile: join(logsDir, `noop${i + 1}.log`) }))
    procs(noops, 0)
    starts.push(...noops.map((p) => p.start().then(() => nameGroups([p], 'noop servers'))))
  }
  if (want('d')) {
    const probes = probePorts.map((port, i) => createProbeProcess({
      name: `probe${i + 1}`, port, logFile: join(logsDir, `probe${i + 1}.log`), dataDir: join(tmp, 'probes', `probe${i + 1}`),
    }))
    procs(probes, 0)
    starts.push(...probes.map((p) => p.start().then(() => nameGroups([p], 'probe servers'))))
  }
  const nodes = want('c') ? [...createPaymentNodes({ nodes: nodeSpecs, apiKeysFile, internalServices: internalServicesSetting(internalTokens), env: { RINGPAY_FIELD_KEYS_FILE: fieldKeysFile } }).values()] : []
  procs(nodes, 0)
  starts.push(...nodes.map((p) => p.start().then(() => nameGroups([p], 'payment nodes'))))
  const started = await Promise.allSettled(starts)
  const failures = started.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []))
  if (failures.length > 0) throw new Error(`start-up failed:\n- ${failures.join('\n- ')}`)
  if (want('b')) {
    const naives = naivePorts.map((port, i) => createNaiveProcess({
      name: `naive${i + 1}`, port, logFile: join(logsDir, `naive${i + 1}.log`), databaseUrl: databaseUrl as string, table: naiveTable, apiKeysFile,
    }))
    procs(naives, 0)
    await Promise.all(naives.map((p) => p.start()))
    nameGroups(naives, 'naive servers')
  }
  const nginx = createNginx({
    dir: join(tmp, 'nginx'),
    logsDir,
    logFile: join(logsDir, 'nginx.log'),
    publicPort: nginxPorts.c,
    internalPort: nginxPorts.internal,
    nodeServers: defs.c.servers,
    workerProcesses: cfg.nginxWorkers,
    // Closed-loop wrk from one IP with one key: far above any per-IP rate meant for clients.
    abuseLimits: benchAbuseLimits,
    extraSites: [
      ...(want('a') ? [{ listenPort: nginxPorts.a, upstreamName: 'bench_noop', servers: defs.a.servers }] : []),
      ...(want('b') ? [{ listenPort: nginxPorts.b, upstreamName: 'bench_naive', servers: defs.b.servers }] : []),
      ...(want('d') ? [{ listenPort: nginxPorts.d, upstreamName: 'bench_probe', servers: defs.d.servers }] : []),
    ],
  })
  session.onStop('nginx', 1, () => nginx.stop())
  await nginx.start()
  nameGroups([nginx], 'nginx')
  log(`ready: ${targets.map((t) => `${t.label} via nginx :${t.nginxPort}`).join(', ')}`)

  // --- load
  const loadTarget = (def: TargetDef, round: number): LoadTarget => ({
    origin: `http://127.0.0.1:${def.nginxPort}`,
    apiKey: demoApiKey,
    idPrefix: `bk${runTag}r${round}${def.key}_`,
  })
  const measure = async (def: TargetDef, round: number, durationS: number, what: string): Promise<{ result: LoadResult, cpu: CpuShare | undefined }> => {
    const groups = new Set(groupNames.keys())
    const snapshots: CpuSnapshot[] = []
    const [fromMs, toMs] = steadyWindowMs(durationS)
    const timers = [fromMs, toMs].map((ms) => setTimeout(() => snapshots.push(cpuSnapshot(groups)), ms))
    const onStarted = (pid: number): void => {
      groups.add(pid)
      groupNames.set(pid, 'wrk')
    }
    try {
      const result = await runOnce(def, round, durationS, what, onStarted)
      const [a, b] = snapshots
      return { result, cpu: a && b ? cpuShare(a, b, groupNames) : undefined }
    } finally {
      for (const t of timers) clearTimeout(t)
    }
  }
  const runOnce = async (def: TargetDef, round: number, durationS: number, what: string,
    onStarted: (pid: number) => void): Promise<LoadResult> => {
    let last = { t: 0, n: 0 }
    const onProgress = (elapsedS: number, responses: number): void => {
      const rate = elapsedS > last.t ? (responses - last.n) / (elapsedS - last.t) : 0
      last = { t: elapsedS, n: responses }
      const count = cfg.mode === 'closed' ? `≈${formatInt(responses)}` : formatInt(responses)
      const recording = cfg.mode === 'open' || (cfg.record && round > 0)
      log(`${what} ${def.label}: ${Math.min(elapsedS, durationS).toFixed(0)}/${durationS} s` +
        (recording ? `, ${count} answers, ${formatInt(rate)}/s` : ''))
    }
    if (cfg.mode === 'open') {
      return runOpenLoop({
        target: loadTarget(def, round),
        rateRps: cfg.rateRps,
        durationS,
        connections: cfg.connections,
        inflightMax: cfg.inflightMax,
        onProgress,
        signal: session.signal,
      })
    }
    const workDir = join(tmp, 'wrk', `r${round}-${def.key}`)
    try {
      return await runWrk({
        target: loadTarget(def, round),
        threads: cfg.threads,
        connections: cfg.connections,
        durationS,
        record: cfg.record && round > 0,
        workDir,
        onProgress,
        onStarted,
        signal: session.signal,
      })
    } finally {
      if (!cfg.keepTemp) rmSync(workDir, { recursive: true, force: true })
    }
  }
  const pause = (): Promise<void> => new Promise((r) => setTimeout(r, interRunPauseMs))

  if (cfg.warmupS > 0) {
    for (const def of targets) {
      await measure(def, 0, cfg.warmupS, 'warm-up')
      await pause()
    }
  }
  const runs: RunRecord[] = []
  /** When the measured (c) runs were on (CLOCK_MONOTONIC µs): the profile summary covers only these. */
  const cWindowsUs: TimeWindowUs[] = []
  const nodeAdminOrigins = nodeSpecs.map((n) => `http://127.0.0.1:${n.adminPort}`)
  const acked: Record<TargetKey, string[]> = { a: [], b: [], c: [], d: [] }
  for (let round = 1; round <= cfg.rounds; round++) {
    for (const def of targets) {
      if (cfg.waitIdleS > 0) await waitForQuiet(`round ${round} ${def.label}`)
      const before = def.key === 'c' ? await scrapeGroupCommit(nodeAdminOrigins) : undefined
      const fromUs = Number(process.hrtime.bigint() / 1000n)
      const { result, cpu } = await measure(def, round, cfg.durationS, `round ${round}/${cfg.rounds}`)
      if (def.key === 'c') cWindowsUs.push([fromUs, Number(process.hrtime.bigint() / 1000n)])
      const groupCommit = before ? groupCommitStats(before, await scrapeGroupCommit(nodeAdminOrigins), result.durationS, nodes.length) : undefined
      const { ackedIds, ...rest } = result
      // (a) stores nothing and (d) is a reference, not a product: their ids are not kept.
      if (def.key === 'b' || def.key === 'c') for (const id of ackedIds) acked[def.key].push(id)
      const skewed = (cpu?.byComponent.other ?? 0) >= foreignCpuWarnPct
      runs.push({ round, target: def.key, result: rest, acked: ackedIds.length, cpu, groupCommit, skewed })
      log(`round ${round}/${cfg.rounds} ${def.label}: ${formatInt(result.throughputRps)} req/s, p50 ${formatMs(result.latencyMs.p50)} ms, ` +
        `p99 ${formatMs(result.latencyMs.p99)} ms, non-2xx ${result.non2xx}`)
      await pause()
    }
  }

  // --- outcome checks
  const outcome: Outcomes = {}
  const checking = cfg.record || cfg.mode === 'open'
  if (want('c') && checking && cfg.profileNode) {
    // The live read-back would land in n1's profile; the store check below covers every id anyway.
    log('outcome check (c): live read-back skipped (--profile-node); the store check covers every id')
  } else if (want('c') && checking) {
    log(`outcome check (c): reading back ${cfg.verifyMax > 0 ? `up to ${formatInt(cfg.verifyMax)} of ` : ''}${formatInt(acked.c.length)} acknowledged ids on ${nodes.length} nodes`)
    outcome.c = await checkNodesOutcome({
      target: 'c',
      merchantId: demoMerchantId,
      ackedIds: acked.c,
      nodes: nodeSpecs.map((n, i) => ({ id: n.id, adminOrigin: nodeAdminOrigins[i] as string })),
      internalToken: internalTokens.audit,
      sampleMax: cfg.verifyMax,
      onProgress: (done, total) => log(`outcome check (c): ${formatInt(done)}/${formatInt(total)}`),
    })
  }
  if (want('c') && checking) {
    // Graceful stop: drained, stores closed. Then every acknowledged id, in every store.
    await Promise.all(nodes.map((n) => n.stop()))
    const unclean = nodes.filter((n) => n.lastExit?.code !== 0)
    if (unclean.length > 0) log(`WARNING: ${unclean.map((n) => `${n.name} exited with ${JSON.stringify(n.lastExit)}`).join(', ')}`)
    log(`outcome check (c): looking up all ${formatInt(acked.c.length)} acknowledged ids in the ${nodes.length} nodes' stores`)
    outcome.cStore = await checkStoresOutcome({ target: 'c', merchantId: demoMerchantId, ackedIds: acked.c, nodes: nodeSpecs, fieldKeysFile })
  }
  if (want('b') && checking && databaseUrl !== undefined) {
    const { distinct, repeated } = distinctIds(acked.b)
    const found = await countNaiveRows(databaseUrl, naiveTable, distinct)
    outcome.b = {
      target: 'b',
      acked: acked.b.length,
      distinct: distinct.length,
      checked: distinct.length,
      lost: distinct.length - found,
      duplicated: repeated.length,
      method: `SELECT count(*) … WHERE checkout_id = ANY(…) on ${naiveTable} (primary key: one row per id at most)`,
      passed: found === distinct.length && repeated.length === 0,
    }
  }

  // --- stop (writes node n1's CPU profile), then report
  if (outcome.c?.passed === false || outcome.cStore?.passed === false || outcome.b?.passed === false) {
    session.keepTemp()
    log(`outcome check failed; the nodes' data and logs are kept in ${tmp}`)
  }
  await session.close()
  let profile: { file: string, windowsUs: TimeWindowUs[], summary: ProfileSummary } | undefined
  if (cfg.profileNode && want('c')) {
    const file = existsSync(profileDir) ? readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile')) : undefined
    if (file === undefined) {
      log('no CPU profile was written by n1')
    } else {
      const dest = join(resultsDir, 'n1.cpuprofile')
      renameSync(join(profileDir, file), dest)
      rmSync(profileDir, { recursive: true, force: true })
      profile = { file: dest, windowsUs: cWindowsUs, summary: summarizeCpuProfileFile(dest, profileTopRows, cWindowsUs) }
      writeFileSync(join(resultsDir, 'profile-n1.txt'), renderProfileSummary(profile.summary,
        `CPU profile of payment node n1 (${dest}), samples of the ${cWindowsUs.length} measured (c) run(s) only`))
    }
  }
  return report({ cfg, machine: { ...machine, foreignBeforePct, fsync }, startedAt, resultsDir, targets, runs, outcome, postgresVersion, databaseExternal, profile, log })
}

function report (o: {
  cfg: AcceptConfig
  machine: ReturnType<typeof describeMachine> & { foreignBeforePct: number, fsync: FsyncProbe }
  startedAt: Date
  resultsDir: string
  targets: TargetDef[]
  runs: RunRecord[]
  outcome: Outcomes
  postgresVersion: string | undefined
  databaseExternal: boolean
  profile: { file: string, windowsUs: TimeWindowUs[], summary: ProfileSummary } | undefined
  log: (message: string) => void
}): number {
  const { cfg, targets, runs, outcome } = o
  const summaries = targets.map((def) => summarize(def, runs))
  const byKey = (k: TargetKey): TargetSummary | undefined => summaries.find((s) => s.key === k)
  const a = byKey('a')
  const b = byKey('b')
  const c = byKey('c')
  const d = byKey('d')
  const cOverA = a && c ? c.throughputRps / a.throughputRps : undefined
  const cOverB = b && c ? c.throughputRps / b.throughputRps : undefined
  const dOverA = a && d ? d.throughputRps / a.throughputRps : undefined
  const cOverD = c && d ? c.throughputRps / d.throughputRps : undefined
  const goalRows = [
    ...(cOverA !== undefined ? [{ name: '(c)/(a) throughput', goal: `≥ ${goals.cOverA}`, value: cOverA, met: cOverA >= goals.cOverA }] : []),
    ...(cOverB !== undefined ? [{ name: '(c)/(b) throughput', goal: `≥ ${goals.cOverB}×`, value: cOverB, met: cOverB >= goals.cOverB }] : []),
    ...(c ? [{
      name: '(c) p99 latency',
      goal: `≤ ${goals.p99Ms} ms at ${goals.p99AtConnections} connections, closed loop`,
      value: c.p99Ms,
      met: c.p99Ms <= goals.p99Ms,
      applicable: cfg.mode === 'closed' && cfg.connections === goals.p99AtConnections,
    }] : []),
  ]
  const outcomePassed = (outcome.c?.passed ?? true) && (outcome.cStore?.passed ?? true) && (outcome.b?.passed ?? true)

  const loadLine = cfg.mode === 'closed'
    ? `closed loop: wrk -t${Math.min(cfg.threads, cfg.connections)} -c${cfg.connections} -d${cfg.durationS}s${cfg.record ? '' : ' (not recording)'}`
    : `open loop: ${formatInt(cfg.rateRps)} req/s, ${cfg.connections} connections, ≤ ${cfg.inflightMax} in flight, ${cfg.durationS} s`
  const header = [
    `accept · ${loadLine} · ${cfg.rounds} interleaved round(s), medians · nginx ${cfg.nginxWorkers} worker(s)`,
    `machine: ${o.machine.nproc} CPUs (${o.machine.cpuModel}), ${o.machine.memTotalGiB} GiB, Linux ${o.machine.kernel}, node ${o.machine.node}, nginx ${o.machine.nginx}` +
      (o.postgresVersion ? `, postgres ${o.postgresVersion}` : '') +
      `; disk write+fsync 4 KiB p50 ${formatMs(o.machine.fsync.p50Ms)} ms, p99 ${formatMs(o.machine.fsync.p99Ms)} ms before the start`,
  ]
  const table = renderTable(
    ['target', 'req/s (median)', 'p50 ms', 'p99 ms', 'p99.9 ms', 'non-2xx', 'errors', 'req/s by round'],
    summaries.map((s) => [
      s.label, formatInt(s.throughputRps), formatMs(s.p50Ms), formatMs(s.p99Ms), formatMs(s.p999Ms),
      formatInt(s.non2xx), formatInt(s.errors),
      s.roundThroughputRps.map((v, i) => `${formatInt(v)}${s.skewedRounds.includes(i + 1) ? '*' : ''}`).join(' / '),
    ]),
  )
  const warningLines: string[] = []
  const componentOrder = ['nginx', 'wrk', 'bench', 'noop servers', 'naive servers', 'postgres', 'payment nodes', 'probe servers', 'other']
  const components = componentOrder.filter((c) => summaries.some((s) => (s.cpu[c] ?? 0) >= 0.5))
  const cpuTable = summaries.some((s) => s.cpu.machine !== undefined)
    ? renderTable(
      [`CPU % of one core (${o.machine.nproc} = ${o.machine.nproc * 100} %)`, 'machine', ...components, 'target µs/req', 'nginx µs/req'],
      summaries.map((s) => [s.label, formatCpu(s.cpu.machine), ...components.map((c) => formatCpu(s.cpu[c])),
        formatCpu(s.targetCpuUsPerRequest), formatCpu(s.nginxCpuUsPerRequest)]),
    )
    : ''
  const skewedRuns = runs.filter((r) => r.skewed).length
  if (skewedRuns > 0) {
    warningLines.push(`WARNING: ${skewedRuns} of ${runs.length} runs (* in "req/s by round") shared the machine with processes the bench ` +
      `did not start (≥ ${foreignCpuWarnPct} % of a core, column "other"): their figures are skewed`)
  }
  if (o.machine.foreignBeforePct >= foreignCpuWarnPct) {
    warningLines.push(`WARNING: other processes used ${Math.round(o.machine.foreignBeforePct)} % of a core just before the bench started`)
  }
  const groupCommitLines = summaries.flatMap((s) => s.groupCommit
    ? [`${s.label} group commit: ${formatInt(s.groupCommit.batchesPerS)} batches/s in all, ${s.groupCommit.meanBatchSize.toFixed(1)} writes per batch, ` +
      `${formatMs(s.groupCommit.meanBatchWriteMs)} ms per batch write, a batch in flight ${s.groupCommit.diskBusyPct.toFixed(0)} % of the time per node (medians)`]
    : [])
  const ratioLines = goalRows.map((g) => {
    const value = g.name.includes('p99') ? `${formatMs(g.value)} ms` : g.name.includes('(b)') ? `${g.value.toFixed(2)}×` : g.value.toFixed(3)
    const verdict = 'applicable' in g && g.applicable === false ? 'n/a for this load' : g.met ? 'met' : 'NOT met'
    return `${g.name}: ${value}   (issue target ${g.goal}: ${verdict})`
  })
  // The probe is no target of its own: it says how much of (a) the storage design leaves, and
  // how much of that the node's own work takes.
  if (dOverA !== undefined) ratioLines.push(`(d)/(a) throughput: ${dOverA.toFixed(3)}   (bare group commit against the ceiling: the most (c) could reach with this design)`)
  if (cOverD !== undefined) ratioLines.push(`(c)/(d) throughput: ${cOverD.toFixed(3)}   (what validation, idempotency, auth, protobuf, change log and metrics cost)`)
  const outcomeLines: string[] = []
  if (outcome.c) {
    const r = outcome.c
    outcomeLines.push(`outcome (c), live: ${formatInt(r.acked)} acknowledged (202), ${formatInt(r.checked)} of ${formatInt(r.distinct)} distinct ids ` +
      `read back${r.sampled ? ' (uniform random sample)' : ' (all)'} on every node's admin API: lost ${r.lost}, duplicated ${r.duplicated}` +
      `${r.checkErrors > 0 ? `, read-back errors ${r.checkErrors}` : ''} → ${r.passed ? 'PASS' : 'FAIL'}` +
      ` [${r.durationS.toFixed(1)} s; per node ${Object.entries(r.foundPerNode).map(([n, k]) => `${n} ${formatInt(k)}`).join(', ')}]`)
    if (!r.passed) outcomeLines.push(`  examples: lost ${r.examples.lost.join(' ') || '-'}; duplicated ${r.examples.duplicated.join(' ') || '-'}`)
  } else if (c && cfg.profileNode) {
    outcomeLines.push('outcome (c), live: skipped (--profile-node keeps it out of the profile)')
  } else if (c) {
    outcomeLines.push('outcome (c): not checked (--no-record)')
  }
  if (outcome.cStore) {
    const r = outcome.cStore
    outcomeLines.push(`outcome (c), stores: all ${formatInt(r.distinct)} distinct ids looked up in every node's LevelDB after shutdown: ` +
      `lost ${r.lost}, duplicated ${r.duplicated}${r.checkErrors > 0 ? `, mismatches ${r.checkErrors}` : ''} → ${r.passed ? 'PASS' : 'FAIL'}` +
      ` [${r.durationS.toFixed(1)} s; per node ${Object.entries(r.foundPerNode).map(([n, k]) => `${n} ${formatInt(k)}`).join(', ')}]`)
    if (!r.passed) outcomeLines.push(`  examples: lost ${r.examples.lost.join(' ') || '-'}; duplicated ${r.examples.duplicated.join(' ') || '-'}`)
  }
  if (outcome.b) {
    const r = outcome.b
    outcomeLines.push(`outcome (b): ${formatInt(r.acked)} acknowledged, all ${formatInt(r.distinct)} distinct ids looked up in Postgres: ` +
      `lost ${r.lost}, duplicated ${r.duplicated} → ${r.passed ? 'PASS' : 'FAIL'}`)
  }
  const text = [
    ...header, '', table, '', ...ratioLines, ...outcomeLines, '',
    ...(cpuTable ? [cpuTable, ...groupCommitLines, ''] : groupCommitLines.length > 0 ? [...groupCommitLines, ''] : []),
    ...(warningLines.length > 0 ? [...warningLines, ''] : []),
    `results: ${relative(process.cwd(), o.resultsDir) || o.resultsDir}`,
  ].join('\n') + '\n'

  // Chart: throughput and latency per second, one line per target and round.
  const seriesOf = (pick: (p: LoadResult['series'][number]) => number): LineSeries[] => runs.map((r) => {
    const def = targets.find((t) => t.key === r.target) as TargetDef
    return {
      label: `${def.label} round ${r.round}`,
      color: def.color,
      dash: roundDashes[(r.round - 1) % roundDashes.length] as string,
      points: r.result.series.map((p) => ({ x: p.second + 0.5, y: pick(p) })),
    }
  })
  const svg = renderChart({
    title: `accept: ${targets.map((t) => t.label).join(' vs ')}`,
    subtitle: `${loadLine} · ${cfg.rounds} round(s) · nginx ${cfg.nginxWorkers} worker(s) · ${o.machine.nproc} CPUs · ${o.startedAt.toISOString()}`,
    xLabel: 'seconds into the run',
    bars: {
      title: 'Median throughput over rounds (2xx/s), with median p99',
      unit: 'req/s',
      items: summaries.map((s) => ({ label: s.label, color: targets.find((t) => t.key === s.key)!.color, value: s.throughputRps, note: `p99 ${formatMs(s.p99Ms)} ms` })),
    },
    panels: [
      { title: 'Throughput per second (2xx answers)', yLabel: 'req/s', series: seriesOf((p) => p.responses - p.non2xx) },
      { title: 'p99 latency per second (log scale)', yLabel: 'ms', log: true, series: seriesOf((p) => p.p99Ms) },
      { title: 'p50 latency per second (log scale)', yLabel: 'ms', log: true, series: seriesOf((p) => p.p50Ms) },
    ],
    legend: [
      ...targets.map((t) => ({ label: t.label, color: t.color })),
      ...Array.from({ length: Math.min(cfg.rounds, roundDashes.length) }, (_, i) => ({ label: `round ${i + 1}`, color: '#555', dash: roundDashes[i] as string })),
    ],
  })

  const json = {
    scenario: 'accept',
    schemaVersion: 1,
    startedAt: o.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: o.machine,
    config: {
      ...cfg,
      threads: Math.min(cfg.threads, cfg.connections),
      postgresVersion: o.postgresVersion ?? null,
      databaseExternal: o.databaseExternal,
      interRunPauseMs,
    },
    targets: targets.map(({ key, name, label, processes, nginxPort }) => ({ key, name, label, processes, nginxPort })),
    runs: runs.map((r) => ({ round: r.round, target: r.target, acked: r.acked, skewed: r.skewed, ...r.result, cpu: r.cpu ?? null, groupCommit: r.groupCommit ?? null })),
    summary: Object.fromEntries(summaries.map((s) => [s.key, s])),
    ratios: { cOverA: cOverA ?? null, cOverB: cOverB ?? null, dOverA: dOverA ?? null, cOverD: cOverD ?? null },
    goals: goalRows,
    outcome: { c: outcome.c ?? null, cStore: outcome.cStore ?? null, b: outcome.b ?? null },
    profile: o.profile ?? null,
    passed: outcomePassed,
    files: { chart: 'chart.svg', table: 'table.txt', ...(o.profile ? { profile: 'profile-n1.txt', cpuprofile: 'n1.cpuprofile' } : {}) },
  }
  writeFileSync(join(o.resultsDir, 'results.json'), JSON.stringify(json, null, 2) + '\n')
  writeFileSync(join(o.resultsDir, 'chart.svg'), svg)
  writeFileSync(join(o.resultsDir, 'table.txt'), text)
  process.stdout.write('\n' + text)
  if (o.profile) process.stdout.write(`\n${renderProfileSummary({ ...o.profile.summary, topSelf: o.profile.summary.topSelf.slice(0, 15), byComponent: o.profile.summary.byComponent.slice(0, 12), topProjectInclusive: o.profile.summary.topProjectInclusive.slice(0, 12) }, `CPU profile of n1 during the measured (c) runs: ${relative(process.cwd(), o.profile.file)}`)}`)
  if (!outcomePassed) o.log('outcome check FAILED: acknowledged payments are missing or duplicated')
  return outcomePassed ? 0 : 1
}

function formatCpu (value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '-' : `${Math.round(value)}`
}

export const scenario: Scenario = {
  name: 'accept',
  summary: 'POST /payments through one nginx: (a) no-op ceiling, (b) naive Postgres INSERT, (c) payment nodes, (d) bare group-commit probe',
  usage,
  run: runAccept,
}
