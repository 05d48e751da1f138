// Finds payments that are not terminal past an age and settles them: asks the PSP for the charge
// under the payment's idempotency key and applies what it learns, or re-drives a payment that
// never reached the PSP. Refunds pending past the same age likewise (a lost refund webhook, a
// refund dead-lettered before the PSP): the PSP's refund under the refund's key, or a re-drive. Nothing stays stuck silently: counts and the oldest age are metrics.
// Running it on several processors at once is harmless: every action is idempotent.

import type pg from 'pg'
import type { Logger } from '../lib/log.ts'
import { terminalStatuses } from '../lib/payment-codec.ts'
import { applyOutcome, chargeRequestOf, drivePayment, pspOf, type ChargeFlowDeps } from './charge-flow.ts'
import { applyRefundOutcome, refundAtPsp } from './refund-flow.ts'
import { expireAwaitingCustomer, expireAuthorization, expireNeverCharged, paymentAgeMs } from './expiry.ts'
import { driveCapture } from './capture-flow.ts'
import type { RefundRequest } from './psp/types.ts'
import type { ProcessorMetrics } from './metrics.ts'

export interface WatchdogOptions {
  intervalMs: number
  staleAfterMs: number
  batchMax: number
  /** processor/expiry.ts: requires_action, and pending with no charge at the PSP, past these ages are canceled. */
  actionExpiryMs: number
  pendingExpiryMs: number
  /** processor/expiry.ts: an authorization (requires_capture) not captured past this age is voided. */
  captureExpiryMs: number
}

const actor = 'watchdog'

/** A requires_capture payment with no capture asked for, younger than the capture window (`param`: seconds). */
function awaitingCaptureSql (param: string): string {
  return `(status = 'requires_capture' AND COALESCE(amount_to_capture, 0) = 0 AND created_at > now() - make_interval(secs => ${param}))`
}

export async function watchdogRound (pool: pg.Pool, flow: ChargeFlowDeps, metrics: ProcessorMetrics, log: Logger,
  options: Pick<WatchdogOptions, 'staleAfterMs' | 'batchMax' | 'actionExpiryMs' | 'pendingExpiryMs' | 'captureExpiryMs'>, nowMs = Date.now): Promise<number> {
  // An authorization awaiting the merchant's capture within its window is neither stale nor stuck
  // (manual capture: hours or days, by design); left out, it neither fills the batch nor ages the metric.
  const oldest = await pool.query<{ age_s: number | null }>(
    `SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age_s FROM payments
     WHERE status NOT IN ('succeeded', 'failed', 'canceled') AND NOT ${awaitingCaptureSql('$1')}`, [options.captureExpiryMs / 1000])
  metrics.watchdogOldestSeconds.set(oldest.rows[0]?.age_s ?? 0)
  const stale = await pool.query<{ merchant_id: string, checkout_id: string }>(
    `SELECT merchant_id, checkout_id FROM payments
     WHERE status NOT IN ('succeeded', 'failed', 'canceled') AND updated_at < now() - make_interval(secs => $1)
       AND flagged_reason IS NULL AND NOT ${awaitingCaptureSql('$3')}
     ORDER BY updated_at LIMIT $2`, [options.staleAfterMs / 1000, options.batchMax, options.captureExpiryMs / 1000])
  metrics.watchdogStale.set(stale.rowCount ?? 0)
  let settled = 0
  for (const id of stale.rows) {
    const plog = log.child({ checkout_id: id.checkout_id, merchant_id: id.merchant_id })
    try {
      const payment = await flow.node.get(id)
      if (terminalStatuses.has(payment.status)) {
        // Terminal on its node, not yet in Postgres: the event is on its way (relay or consumer lag).
        metrics.watchdogActions.inc({ action: 'awaiting_projection' })
        continue
      }
      if (payment.status === 'requires_action') {
        if (paymentAgeMs(payment, nowMs()) < options.actionExpiryMs) {
          metrics.watchdogActions.inc({ action: 'awaiting_customer' })
          continue
        }
        const expired = await expireAwaitingCustomer(flow, payment)
        metrics.watchdogActions.inc({ action: `action_${expired}` })
        settled++
        continue
      }
      if (payment.status === 'requires_capture') {
        if ((payment.amount_to_capture ?? 0) > 0) {
          // A capture asked for and not finished (dead-lettered, the processor's answer lost): again,
          // under the same PSP key.
          plog.warn('watchdog: capture not finished; re-driving')
          metrics.watchdogActions.inc({ action: 'capture_redrive' })
          await driveCapture(flow, payment, actor)
          settled++
          continue
        }
        if (paymentAgeMs(payment, nowMs()) < options.captureExpiryMs) {
          // Within its window the merchant may still capture: no PSP call.
          metrics.watchdogActions.inc({ action: 'awaiting_capture' })
          continue
        }
        const expired = await expireAuthorization(flow, payment)
        metrics.watchdogActions.inc({ action: `capture_${expired}` })
        settled++
        continue
      }
      const found = await pspOf(flow, payment.psp_provider).findCharge(chargeRequestOf(payment))
      if (found === undefined && payment.status === 'pending' && paymentAgeMs(payment, nowMs()) >= options.pendingExpiryMs) {
        const expired = await expireNeverCharged(flow, payment)
        metrics.watchdogActions.inc({ action: `pending_${expired}` })
        settled++
        continue
      }
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
  return settled + await refundRound(pool, flow, metrics, log, options)
}

/** Refunds pending past `staleAfterMs` in Postgres: looked up at the PSP by key, applied or re-driven. */
async function refundRound (pool: pg.Pool, flow: ChargeFlowDeps, metrics: ProcessorMetrics, log: Logger,
  options: Pick<WatchdogOptions, 'staleAfterMs' | 'batchMax'>): Promise<number> {
  const stale = await pool.query<{ refund_id: string, merchant_id: string, checkout_id: string }>(
    `SELECT refund_id, merchant_id, checkout_id FROM refunds
     WHERE status = 'pending' AND updated_at < now() - make_interval(secs => $1)
     ORDER BY updated_at LIMIT $2`, [options.staleAfterMs / 1000, options.batchMax])
  let settled = 0
  for (const { refund_id: refundId, merchant_id: merchantId, checkout_id: checkoutId } of stale.rows) {
    const rlog = log.child({ checkout_id: checkoutId, merchant_id: merchantId, refund_id: refundId })
    try {
      const payment = await flow.node.get({ merchant_id: merchantId, checkout_id: checkoutId })
      const refund = payment.refunds?.find((r) => r.id === refundId)
      if (refund === undefined || refund.status !== 'pending') {
        // Settled on its node, not yet in Postgres: the event is on its way.
        metrics.watchdogActions.inc({ action: 'refund_awaiting_projection' })
        continue
      }
      const request: RefundRequest = { refundId, merchantId, checkoutId, chargeReference: payment.psp_reference ?? '', amount: refund.amount, currency: payment.currency }
      const found = await pspOf(flow, payment.psp_provider).findRefund(request)
      if (found === undefined) {
        rlog.warn('watchdog: no refund at the psp; re-driving')
        metrics.watchdogActions.inc({ action: 'refund_redrive' })
        await refundAtPsp(flow, request, actor, payment.psp_provider)
      } else if (found.kind === 'pending') {
        metrics.watchdogActions.inc({ action: 'refund_psp_pending' })
      } else {
        rlog.warn({ psp: found.kind }, 'watchdog: applying the psp refund result')
        metrics.watchdogActions.inc({ action: 'refund_applied_psp_result' })
        await applyRefundOutcome(flow, request, found, actor)
      }
      settled++
    } catch (error) {
      metrics.watchdogActions.inc({ action: 'error' })
      rlog.error({ err: error }, 'watchdog could not settle refund')
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
