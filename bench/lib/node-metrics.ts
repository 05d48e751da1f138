// Group-commit figures of the payment nodes over one run, from their Prometheus /metrics (admin
// port): batches written, writes per batch, time per batch write (LevelDB batch + fsync). Scraped
// before and after each (c) run; the difference is the run's.

import { request } from 'undici'

/** Per scrape request. */
export const metricsScrapeTimeoutMs = 5_000

export interface GroupCommitTotals {
  batches: number
  writes: number
  writeSeconds: number
}

export interface GroupCommitStats {
  batches: number
  batchesPerS: number
  meanBatchSize: number
  meanBatchWriteMs: number
  /** Share of the run a node spent with a batch write in flight, averaged over nodes. */
  diskBusyPct: number
}

function sumOf (text: string, metric: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue
    const m = /^(\w+)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (m === null || m[1] !== metric) continue
    const value = Number(m[3])
    if (Number.isFinite(value)) sum += value
  }
  return sum
}

export async function scrapeGroupCommit (adminOrigins: readonly string[]): Promise<GroupCommitTotals> {
  const texts = await Promise.all(adminOrigins.map(async (origin) => {
    const res = await request(`${origin}/metrics`, { headersTimeout: metricsScrapeTimeoutMs, bodyTimeout: metricsScrapeTimeoutMs })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`${origin}/metrics answered ${res.statusCode}`)
    return text
  }))
  const total = { batches: 0, writes: 0, writeSeconds: 0 }
  for (const text of texts) {
    total.batches += sumOf(text, 'ringpay_batch_size_count')
    total.writes += sumOf(text, 'ringpay_batch_size_sum')
    total.writeSeconds += sumOf(text, 'ringpay_batch_write_duration_seconds_sum')
  }
  return total
}

export function groupCommitStats (before: GroupCommitTotals, after: GroupCommitTotals, durationS: number, nodes: number): GroupCommitStats {
  const batches = after.batches - before.batches
  const writes = after.writes - before.writes
  const seconds = after.writeSeconds - before.writeSeconds
  const round = (v: number, digits: number): number => Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : Number.NaN
  return {
    batches,
    batchesPerS: round(batches / durationS, 1),
    meanBatchSize: round(writes / batches, 2),
    meanBatchWriteMs: round((seconds * 1000) / batches, 3),
    diskBusyPct: round((seconds / (durationS * nodes)) * 100, 1),
  }
}
