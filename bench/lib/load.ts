// What one load run against one target produces, whichever generator ran it (wrk for the closed
// loop, bench/lib/open-loop.ts for the open loop), and the request every generator sends.

import type { LatencySummaryMs, SeriesPoint } from './stats.ts'

export type LoadMode = 'closed' | 'open'

export interface LoadErrors {
  /** Socket-level failures reported by the generator. */
  connect: number
  read: number
  write: number
  timeout: number
  /** Open loop only: scheduled requests not sent because the in-flight bound was reached. */
  dropped: number
}

export interface LoadResult {
  mode: LoadMode
  /** Measured seconds (wrk's own figure for the closed loop). */
  durationS: number
  /** Responses received, any status. */
  responses: number
  /** 2xx responses per second: the throughput the report compares. */
  throughputRps: number
  /** Responses by HTTP status ("202": 123456). Empty when the run was not recorded. */
  statusCounts: Record<string, number>
  non2xx: number
  errors: LoadErrors
  /** Closed loop: wrk's own histogram. Open loop: from each request's intended send time. */
  latencyMs: LatencySummaryMs
  /** Per completion second; empty when the run was not recorded. */
  series: SeriesPoint[]
  /** Checkout ids answered 202, in completion order (not written to the JSON). */
  ackedIds: string[]
  /** False with --no-record (wrk without the response() callback). */
  recorded: boolean
}

/** The POST every target gets: the 159-byte body of /tmp/wrk/post.lua (PERF-NOTES used a 224-byte one). */
export const benchRequestBody = JSON.stringify({
  amount: 1999,
  currency: 'EUR',
  payment_method: 'pm_card_visa',
  description: 'Order 1234 from the bench',
  customer_ref: 'cust_42',
  metadata: { order: '1234' },
})

export const benchPath = '/payments'

export interface LoadTarget {
  /** http://127.0.0.1:port, the nginx server in front of the target. */
  origin: string
  apiKey: string
  /**
   * Prefix of every checkout id of this run; ids are `<prefix><thread>_<counter>_<send µs>`
   * (underscores: the card-number guard treats spaces and dashes as digit-group separators).
   */
  idPrefix: string
}
