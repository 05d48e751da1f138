// Which merchants have webhook endpoints, kept in memory so the consumer does not build, seal
// and send to Postgres an event for every payment of merchants that never asked for webhooks
// (most of them, on the hot path of every payment). Refreshed every endpointCacheRefreshIntervalMs
// and at once when this notifier creates an endpoint; Postgres stays the judge (recordEvents
// keeps only events of merchants with endpoints), this only saves work. While the set is not known
// (not loaded yet, or Postgres failing) nothing is filtered.

import type pg from 'pg'
import type { Logger } from '../lib/log.ts'

export class MerchantFilter {
  readonly #pool: pg.Pool
  readonly #log: Logger
  #merchants: Set<string> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (pool: pg.Pool, log: Logger) {
    this.#pool = pool
    this.#log = log
  }

  /** False only for a merchant known to have no endpoint. */
  mayHaveEndpoints (merchantId: string): boolean {
    return this.#merchants === undefined || this.#merchants.has(merchantId)
  }

  /** An endpoint was just created here: its merchant's events count from now, not from the next refresh. */
  add (merchantId: string): void {
    this.#merchants?.add(merchantId)
  }

  async refresh (): Promise<void> {
    try {
      const { rows } = await this.#pool.query<{ merchant_id: string }>('SELECT DISTINCT merchant_id FROM webhook_endpoints WHERE deleted_at IS NULL')
      this.#merchants = new Set(rows.map((r) => r.merchant_id))
    } catch (error) {
      this.#merchants = undefined
      this.#log.warn({ err: error }, 'loading the merchants with endpoints failed; filtering nothing until it works')
    }
  }

  start (intervalMs: number): void {
    const tick = (): void => {
      void this.refresh().finally(() => { this.#timer = setTimeout(tick, intervalMs) })
    }
    tick()
  }

  stop (): void {
    clearTimeout(this.#timer)
  }
}
