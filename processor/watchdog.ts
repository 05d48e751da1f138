// Finds payments that are not terminal past an age and settles them: asks the PSP for the charge
// under the payment's idempotency key and applies what it learns, or re-drives a payment that
// never reached the PSP. Nothing stays stuck silently: counts and the oldest age are metrics.
// Running it on several processors at once is harmless: every action is idempotent.

import type pg from 'pg'
import type { Logger } from '../lib/log.ts'
import { terminalStatuses } from '../lib/payment-codec.ts'
import { applyOutcome, chargeRequestOf, drivePayment, type ChargeFlowDeps } from './charge-flow.ts'
import type { ProcessorMetrics } from './metrics.ts'

export interface WatchdogOptions {
  intervalMs: number
  staleAfterMs: number
  batchMax: number
}

const actor = 'watchdog'

export async function watchdogRound (pool: pg.Pool, flow: ChargeFlowDeps, metrics: ProcessorMetrics, log: Logger,
  options: Pick<WatchdogOptions, 'staleAfterMs' | 'batchMax'>): Promise<number> {
  const oldest = await pool.query<{ age_s: number | null }>(
    `SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age_s FROM payments
     WHERE status NOT IN ('succeeded', 'failed', 'canceled')`)
  metrics.watchdogOldestSeconds.set(oldest.rows[0]?.age_s ?? 0)
  const stale = await pool.query<{ checkout_id: string }>(
    `SELECT checkout_id FROM payments
     WHERE status NOT IN ('succeeded', 'failed', 'canceled') AND updated_at < now() - make_interval(secs => $1)
       AND flagged_reason IS NULL
     ORDER BY updated_at LIMIT $2`, [options.staleAfterMs / 1000, options.batchMax])
  metrics.watchdogStale.set(stale.rowCount ?? 0)
  let settled = 0
  for (const { checkout_id: checkoutId } of stale.rows) {
    const plog = log.child({ checkout_id: checkoutId })
    try {
      const payment = await flow.node.get(checkoutId)
      if (terminalStatuses.has(payment.status)) {
        // Terminal on its node, not yet in Postgres: the event is on its way (relay or consumer lag).
        metrics.watchdogActions.inc({ action: 'awaiting_projection' })
        continue
      }
      if (payment.status === 'requires_action') {
        metrics.watchdogActions.inc({ action: 'awaiting_customer' })
        continue
      }
      const found = await flow.psp.findCharge(chargeRequestOf(payment))
      if (found === undefined) {
        plog.warn({ status: payment.status }, 'watchdog: no charge at the psp; re-driving')
        metrics.watchdogActions.inc({ action: 'redrive' })
        await drivePayment(flow, payment, actor)
      } else if (found.kind === 'pending') {
        metrics.watchdogActions.inc({ action: 'psp_pending' })
      } else {
        plog.warn({ status: payment.status, psp: found.kind }, 'watchdog: applying the psp result')
        metrics.watchdogActions.inc({ action: 'applied_psp_result' })
        await applyOutcome(flow, payment, found, actor)
      }
      settled++
    } catch (error) {
      metrics.watchdogActions.inc({ action: 'error' })
      plog.error({ err: error }, 'watchdog could not settle payment')
    }
  }
  return settled
}

export function startWatchdog (pool: pg.Pool, flow: ChargeFlowDeps, metrics: ProcessorMetrics, log: Logger,
  options: WatchdogOptions): () => Promise<void> {
  let stopped = false
  let busy = false
  let running: Promise<unknown> = Promise.resolve()
  const timer = setInterval(() => {
    // One round at a time: a slow round (PSP down) must not pile up concurrent rounds.
    if (stopped || busy) return
    busy = true
    running = watchdogRound(pool, flow, metrics, log, options).catch((error: unknown) => {
      log.error({ err: error }, 'watchdog round failed')
    }).finally(() => { busy = false })
  }, options.intervalMs)
  return async () => {
    stopped = true
    clearInterval(timer)
    await running
  }
}
