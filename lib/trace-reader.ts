// Reads one payment's trace back from the trace files (OTLP/JSON lines, trace-file-exporter.ts) and
// lays it out as a waterfall: every span with its service, its start offset from the trace's
// first span and its duration, in tree order (children under their parent, by start time).
// scripts/trace.ts prints it; the tracing test asserts on it.

import { createReadStream, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { paymentTraceIds } from './trace-id.ts'
import { traceFileSuffix } from './trace-file-exporter.ts'

export interface TraceSpan {
  traceId: string
  spanId: string
  /** '' for the root. */
  parentSpanId: string
  name: string
  service: string
  /** Epoch ms. */
  startMs: number
  endMs: number
  attributes: Record<string, string | number | boolean>
  error: boolean
}

export interface WaterfallRow {
  span: TraceSpan
  /** Nesting under the root (0); a span whose parent is not in the files counts as a root. */
  depth: number
  offsetMs: number
  durationMs: number
}

/** Lines longer than this are skipped (the exporter writes ≤ exportBatchSpansMax bounded spans). */
const traceLineBytesMax = 16 * 1024 * 1024

interface OtlpAnyValue { stringValue?: string, intValue?: string | number, doubleValue?: number, boolValue?: boolean }
interface OtlpKeyValue { key: string, value: OtlpAnyValue }
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  startTimeUnixNano: string | number
  endTimeUnixNano: string | number
  attributes?: OtlpKeyValue[]
  status?: { code?: number }
}
interface OtlpRequest {
  resourceSpans?: Array<{ resource?: { attributes?: OtlpKeyValue[] }, scopeSpans?: Array<{ spans?: OtlpSpan[] }> }>
}

function valueOf (value: OtlpAnyValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue
  if (value.intValue !== undefined) return Number(value.intValue)
  if (value.doubleValue !== undefined) return value.doubleValue
  if (value.boolValue !== undefined) return value.boolValue
  return ''
}

function attributesOf (list: OtlpKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  for (const kv of list ?? []) out[kv.key] = valueOf(kv.value)
  return out
}

/** Nanoseconds since the epoch (a decimal string in OTLP/JSON) as fractional ms. */
function nanosToMs (nanos: string | number): number {
  const n = BigInt(nanos)
  return Number(n / 1000n) / 1000
}

/** OTLP/JSON status code 2 = ERROR. */
const statusCodeError = 2

/**
 * Every span of `traceId` in the trace files of `dir` (rotated files too). `bytesMax` bounds what is
 * read (the console's page must not read gigabytes): the newest files first, and `truncated` says
 * some were left unread.
 */
export async function readTrace (dir: string, traceId: string, bytesMax = Number.POSITIVE_INFINITY): Promise<TraceSpan[] & { truncated?: boolean }> {
  const files = readdirSync(dir).filter((name) => name.endsWith(traceFileSuffix))
    .map((name) => ({ name, stat: statSync(join(dir, name)) }))
    .sort((a, b) => b.stat.mtimeMs - a.stat.mtimeMs)
  const spans: TraceSpan[] & { truncated?: boolean } = []
  let budget = bytesMax
  for (const { name, stat } of files) {
    if (stat.size === 0) continue
    if (stat.size > budget) {
      spans.truncated = true
      continue
    }
    budget -= stat.size
    const lines = createInterface({ input: createReadStream(join(dir, name), { encoding: 'utf8', end: Math.max(stat.size - 1, 0) }), crlfDelay: Infinity })
    for await (const line of lines) {
      // Most lines hold other payments only: the id as text is a cheap first filter.
      if (line.length > traceLineBytesMax || !line.includes(traceId)) continue
      let request: OtlpRequest
      try {
        request = JSON.parse(line) as OtlpRequest
      } catch {
        continue // a line cut by a crash mid-write
      }
      for (const resourceSpans of request.resourceSpans ?? []) {
        const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name'] ?? '')
        for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
          for (const span of scopeSpans.spans ?? []) {
            if (span.traceId !== traceId) continue
            spans.push({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              service,
              startMs: nanosToMs(span.startTimeUnixNano),
              endMs: nanosToMs(span.endTimeUnixNano),
              attributes: attributesOf(span.attributes),
              error: span.status?.code === statusCodeError,
            })
          }
        }
      }
    }
  }
  return spans
}

/** The trace of a payment (its derived trace id). */
export function readPaymentTrace (dir: string, merchantId: string, checkoutId: string, bytesMax?: number): Promise<TraceSpan[] & { truncated?: boolean }> {
  return readTrace(dir, paymentTraceIds(merchantId, checkoutId).traceId, bytesMax)
}

/** Spans in tree order: each root by start time, then its children the same way, depth first. */
export function waterfall (spans: readonly TraceSpan[]): WaterfallRow[] {
  if (spans.length === 0) return []
  const byStart = [...spans].sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs)
  const ids = new Set(byStart.map((s) => s.spanId))
  const children = new Map<string, TraceSpan[]>()
  const roots: TraceSpan[] = []
  for (const span of byStart) {
    if (span.parentSpanId === '' || !ids.has(span.parentSpanId)) roots.push(span)
    else {
      const list = children.get(span.parentSpanId) ?? []
      list.push(span)
      children.set(span.parentSpanId, list)
    }
  }
  const originMs = byStart[0]!.startMs
  const rows: WaterfallRow[] = []
  const visited = new Set<string>()
  const visit = (span: TraceSpan, depth: number): void => {
    // A span id seen twice (a duplicated export) is shown once; a cycle cannot recurse.
    if (visited.has(span.spanId)) return
    visited.add(span.spanId)
    rows.push({ span, depth, offsetMs: span.startMs - originMs, durationMs: span.endMs - span.startMs })
    for (const child of children.get(span.spanId) ?? []) visit(child, depth + 1)
  }
  for (const root of roots) visit(root, 0)
  return rows
}

const barWidth = 40

/** The waterfall as text: span (indented by depth), service, start offset, duration, a bar. */
export function formatWaterfall (rows: readonly WaterfallRow[]): string {
  if (rows.length === 0) return 'no spans\n'
  const totalMs = Math.max(...rows.map((r) => r.offsetMs + r.durationMs), 0.001)
  const nameWidth = Math.max(...rows.map((r) => r.depth * 2 + r.span.name.length), 4)
  const serviceWidth = Math.max(...rows.map((r) => r.span.service.length), 7)
  const lines = [`${'span'.padEnd(nameWidth)}  ${'service'.padEnd(serviceWidth)}  ${'start ms'.padStart(10)}  ${'dur ms'.padStart(9)}`]
  for (const row of rows) {
    const from = Math.floor(row.offsetMs / totalMs * barWidth)
    const width = Math.max(1, Math.round(row.durationMs / totalMs * barWidth))
    const bar = ' '.repeat(from) + '█'.repeat(Math.min(width, barWidth - from + 1))
    lines.push(`${(' '.repeat(row.depth * 2) + row.span.name).padEnd(nameWidth)}  ${row.span.service.padEnd(serviceWidth)}  ` +
      `${row.offsetMs.toFixed(2).padStart(10)}  ${row.durationMs.toFixed(2).padStart(9)}  |${bar}${row.span.error ? '  ERROR' : ''}`)
  }
  return lines.join('\n') + '\n'
}
