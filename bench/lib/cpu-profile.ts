// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by component
// (node's HTTP stack, payment-svc files, npm packages, GC, idle), and inclusive time of the
// project's own functions. Optionally only the samples inside given time windows (V8's profile
// timestamps are CLOCK_MONOTONIC µs, the clock of process.hrtime), so start-up (module loading,
// TypeScript stripping) and idle phases stay out. Used by `accept --profile-node`; also runnable
// on any profile (whole profile):
//
//   node bench/lib/cpu-profile.ts <file.cpuprofile> [top]

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileRow {
  name: string
  ms: number
  /** Share of the busy (non-idle) time. */
  pct: number
}

export interface ProfileSummary {
  totalMs: number
  idleMs: number
  busyMs: number
  byComponent: ProfileRow[]
  /** The payment node's accept path by stage (see acceptStages); other processes land in "other". */
  byStage: ProfileRow[]
  topSelf: ProfileRow[]
  topProjectInclusive: ProfileRow[]
}

function shortUrl (url: string): string {
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) return url.slice(nm + '/node_modules/'.length)
  for (const dir of ['/payment-svc/', '/lib/', '/bench/', '/scripts/']) {
    const i = url.lastIndexOf(dir)
    if (i !== -1) return url.slice(i + 1)
  }
  return url.replace(/^file:\/\//, '')
}

function component (frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') {
    if (functionName.startsWith('(')) return functionName
    return '(native / builtins)'
  }
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return `npm:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`
  }
  if (url.startsWith('node:')) {
    const mod = url.slice('node:'.length)
    if (/^_http_|^http$|^internal\/http/.test(mod)) return 'node:http'
    if (/^net$|^internal\/net|^internal\/stream_base|^internal\/tcp/.test(mod)) return 'node:net'
    if (/^internal\/streams|^stream/.test(mod)) return 'node:streams'
    if (/^internal\/timers|^timers/.test(mod)) return 'node:timers'
    if (/^internal\/process\/task_queues|^internal\/async_hooks|^events|^internal\/event_target/.test(mod)) return 'node:events/ticks'
    if (/crypto/.test(mod)) return 'node:crypto'
    if (/buffer|internal\/util|string_decoder/.test(mod)) return 'node:buffer/util'
    return `node:${mod.split('/').slice(0, 2).join('/')}`
  }
  for (const dir of ['/payment-svc/', '/lib/']) {
    const i = url.lastIndexOf(dir)
    if (i !== -1) return url.slice(i + 1)
  }
  return shortUrl(url)
}

/**
 * Stages of payment-svc's accept path, matched on function names and files: each sample goes to
 * the stage of the frame nearest its leaf that matches a rule (rules in order). Names that a
 * refactor changes fall into "other" — check that row before trusting the rest.
 */
export const acceptStages: ReadonlyArray<readonly [string, (f: CallFrame) => boolean]> = [
  ['GC', (f) => f.functionName === '(garbage collector)'],
  ['(program): V8/native, unattributed', (f) => f.functionName === '(program)'],
  ['idempotency read (store.getPayment → getSync)', (f) =>
    (f.functionName === 'getPayment' && f.url.endsWith('/store.ts')) || f.functionName === '_getSync'],
  ['metrics (prom-client)', (f) => f.url.includes('/prom-client/')],
  ['logging (pino)', (f) => f.url.includes('/pino/')],
  ['open-payment scan', (f) => f.functionName === 'scanOpen'],
  ['request hash (hashCreateRequest)', (f) => f.functionName === 'hashCreateRequest'],
  ['API key sha256 (merchantFor)', (f) => f.functionName === 'merchantFor'],
  ['validation (JSON.parse, parseCreatePayment, card guard, ids)', (f) =>
    ['parseCreatePayment', 'parseJson', 'containsCardNumber', 'checkoutIdFrom', 'isJsonContentType', 'isValidCheckoutId',
      'checkText', 'parseMetadata'].includes(f.functionName)],
  ['group commit: protobuf encode', (f) => f.url.endsWith('/payment-codec.ts') || f.url.includes('/protobufjs/')],
  ['group commit: LevelDB batch (main thread)', (f) =>
    f.url.includes('/classic-level/') || f.url.includes('/abstract-level/') || f.url.includes('/level-transcoder/')],
  ['group commit: queue, flush, resolve', (f) =>
    f.url.endsWith('/group-commit.ts') || f.url.endsWith('/ring-buffer.ts') ||
    (f.url.endsWith('/payment-service.ts') && f.functionName === '#writeBatch') ||
    (f.url.endsWith('/store.ts') && f.functionName === 'writeBatch')],
  ['response body (paymentView, JSON.stringify, headers)', (f) => ['paymentView', 'sendJson'].includes(f.functionName)],
  ['HTTP stack: parse, respond, socket I/O (the no-op pays this too)', (f) =>
    /^node:(_http|http$|net$|stream$|internal\/(http|streams|stream_base|net|tcp))/.test(f.url)],
  ['readBody', (f) => f.url.endsWith('/http-io.ts')],
  ['payment service, routes, server glue', (f) => f.url.includes('/payment-svc/')],
  ['event loop, timers, microtasks', (f) => /^node:(internal\/(process\/task_queues|timers|async_hooks)|timers$|events$)/.test(f.url)],
]

function frameName (frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return frame.url === '' ? name : `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
}

/** [start, end) in CLOCK_MONOTONIC µs. */
export type TimeWindowUs = [number, number]

export function summarizeCpuProfile (profile: CpuProfile, top: number, windows?: readonly TimeWindowUs[]): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  // Time of sample i = gap to the next sample (the last one gets the mean gap).
  const deltas = profile.timeDeltas
  const totalUs = profile.endTime - profile.startTime
  const meanGap = profile.samples.length > 0 ? totalUs / profile.samples.length : 0
  const self = new Map<number, number>()
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    at += deltas[i] ?? 0
    if (windows !== undefined && !windows.some(([from, to]) => at >= from && at < to)) continue
    const us = i + 1 < deltas.length ? Math.max(0, deltas[i + 1] as number) : meanGap
    const id = profile.samples[i] as number
    self.set(id, (self.get(id) ?? 0) + us)
  }
  const byComponent = new Map<string, number>()
  const byStage = new Map<string, number>()
  const bySelfName = new Map<string, number>()
  const projectInclusive = new Map<string, number>()
  let idleUs = 0
  let sumUs = 0
  for (const [id, us] of self) {
    const node = byId.get(id)
    if (node === undefined) continue
    sumUs += us
    if (node.callFrame.functionName === '(idle)') {
      idleUs += us
      continue
    }
    const comp = component(node.callFrame)
    byComponent.set(comp, (byComponent.get(comp) ?? 0) + us)
    let stage = 'other'
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame
      const rule = frame === undefined ? undefined : acceptStages.find(([, test]) => test(frame))
      if (rule !== undefined) {
        stage = rule[0]
        break
      }
    }
    byStage.set(stage, (byStage.get(stage) ?? 0) + us)
    const name = frameName(node.callFrame)
    bySelfName.set(name, (bySelfName.get(name) ?? 0) + us)
    // Inclusive time of project functions on this sample's stack, each counted once per stack.
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame
      if (frame === undefined || !/\/(payment-svc|lib)\//.test(frame.url) || frame.url.includes('/node_modules/')) continue
      const key = frameName(frame)
      if (seen.has(key)) continue
      seen.add(key)
      projectInclusive.set(key, (projectInclusive.get(key) ?? 0) + us)
    }
  }
  const busyUs = sumUs - idleUs
  const rows = (m: Map<string, number>, n: number): ProfileRow[] => [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, pct: busyUs > 0 ? Math.round((us / busyUs) * 1000) / 10 : 0 }))
  return {
    totalMs: Math.round(sumUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    byComponent: rows(byComponent, top),
    byStage: rows(byStage, acceptStages.length + 1),
    topSelf: rows(bySelfName, top),
    topProjectInclusive: rows(projectInclusive, top),
  }
}

export function renderProfileSummary (s: ProfileSummary, title: string): string {
  const section = (heading: string, rows: ProfileRow[]): string =>
    [heading, ...rows.map((r) => `  ${r.pct.toFixed(1).padStart(5)} %  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name}`)].join('\n')
  return [
    title,
    `sampled ${s.totalMs} ms: idle ${s.idleMs} ms, busy ${s.busyMs} ms (percentages are of busy time)`,
    '',
    section('Accept path by stage (payment-svc):', s.byStage),
    '',
    section('Self time by component:', s.byComponent),
    '',
    section('Self time by function:', s.topSelf),
    '',
    section('Inclusive time of payment-svc/ and lib/ functions:', s.topProjectInclusive),
    '',
  ].join('\n')
}

export function summarizeCpuProfileFile (path: string, top: number, windows?: readonly TimeWindowUs[]): ProfileSummary {
  return summarizeCpuProfile(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, top, windows)
}

const defaultTopRows = 30

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node bench/lib/cpu-profile.ts <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  const top = Number(process.argv[3] ?? defaultTopRows)
  process.stdout.write(renderProfileSummary(summarizeCpuProfileFile(file, top), file))
}
