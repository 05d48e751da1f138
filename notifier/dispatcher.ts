// The delivery loop: claims due deliveries from Postgres (store.ts: the earliest pending version
// of each payment per endpoint, free, of an enabled endpoint), starts at most
// deliveriesInFlightMax attempts in all and deliveriesInFlightPerEndpointMax per endpoint, and
// settles each attempt in Postgres: succeeded, retried later (backoff with jitter), failed for
// good past the retry window; an endpoint failing long enough is disabled. Every attempt runs on
// its own promise: a slow endpoint holds only its own slots, never the loop or other merchants.

import type pg from 'pg'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import type { NotifierLimits } from './limits.ts'
import { afterFailure, pickStartable, shouldDisable } from './retry-policy.ts'
import type { SendResult } from './sender.ts'
import { disableEndpoint, dueDeliveries, leaseDeliveries, recordAttempt, releaseLeases, type ClaimedDelivery, type DeliveryOutcome } from './store.ts'

export interface DispatcherHooks {
  onAttempt?: (outcome: DeliveryOutcome['kind'], httpStatus: number | undefined, latencyMs: number) => void
  onDisabled?: () => void
  onLoopError?: () => void
  onUnopenable?: () => void
}

export interface DispatcherDeps {
  pool: pg.Pool
  sealer: FieldSealer
  send: (url: string, eventId: string, body: string, secrets: readonly string[]) => Promise<SendResult>
  limits: NotifierLimits
  log: Logger
  hooks?: DispatcherHooks
}

export class Dispatcher {
  readonly #deps: DispatcherDeps
  readonly #inFlightByEndpoint = new Map<string, number>()
  readonly #inFlight = new Map<string, Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #again = false
  #wakePending = false
  #stopped = false

  constructor (deps: DispatcherDeps) {
    this.#deps = deps
  }

  get inFlight (): number { return this.#inFlight.size }

  start (): void {
    this.#schedule(0)
  }

  /**
   * Looks at the queue soon (new deliveries were written, a redelivery asked for, or an attempt
   * ended). Wakes within dispatchWakeDelayMs are one look: under load, attempts end by the
   * hundred per second, and each look is a query over the pending deliveries.
   */
  wake (): void {
    if (this.#stopped) return
    if (this.#running !== undefined) {
      this.#again = true
      return
    }
    if (this.#wakePending) return
    this.#wakePending = true
    this.#schedule(this.#deps.limits.dispatchWakeDelayMs)
  }

  #schedule (delayMs: number): void {
    if (this.#stopped) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#wakePending = false
      this.#running ??= this.#loop()
    }, delayMs)
  }

  async #loop (): Promise<void> {
    let failed = false
    try {
      do {
        this.#again = false
        await this.#dispatchOnce()
      } while (this.#again && !this.#stopped)
    } catch (error) {
      failed = true
      this.#deps.hooks?.onLoopError?.()
      this.#deps.log.warn({ err: error }, 'dispatching deliveries failed; trying again')
    } finally {
      this.#running = undefined
      // Postgres down: wait a poll interval (at least a second) before the next look.
      this.#schedule(failed ? Math.max(1_000, this.#deps.limits.dispatchPollIntervalMs) : this.#deps.limits.dispatchPollIntervalMs)
    }
  }

  async #dispatchOnce (): Promise<void> {
    const { limits, pool, sealer } = this.#deps
    const free = limits.deliveriesInFlightMax - this.#inFlight.size
    if (free <= 0) return
    const atCap = [...this.#inFlightByEndpoint].filter(([, n]) => n >= limits.deliveriesInFlightPerEndpointMax).map(([id]) => id)
    const due = await dueDeliveries(pool, atCap, limits.deliveriesInFlightPerEndpointMax, Math.min(limits.dispatchBatchMax, free * 2))
    const startable = pickStartable(due.filter((d) => !this.#inFlight.has(d.deliveryId)), this.#inFlightByEndpoint, this.#inFlight.size, limits)
    const { claimed, unopenable } = await leaseDeliveries(pool, sealer, startable.map((d) => d.deliveryId), limits.leaseMs)
    for (const delivery of claimed) this.#startAttempt(delivery)
    for (const { delivery, error } of unopenable) {
      // Not the endpoint's fault (usually a rotated field key this notifier was not restarted
      // with): a failed attempt with no request, retried on the usual schedule (visible to the
      // merchant, bounded churn), not counted against the endpoint.
      this.#deps.hooks?.onUnopenable?.()
      this.#deps.log.error({ err: error, checkout_id: delivery.checkoutId, event_id: delivery.eventId, endpoint_id: delivery.endpointId },
        'a delivery\'s secret or body does not open; no attempt made')
      const nowMs = Date.now()
      const next = afterFailure(delivery.attempts + 1, nowMs, delivery.giveUpAtMs, limits)
      await recordAttempt(pool, delivery, { attemptedAtMs: nowMs, latencyMs: 0, httpStatus: undefined, error: 'notifier: a sealed value did not open; no request was sent' },
        next.kind === 'retry' ? { kind: 'retry', delayMs: next.nextAttemptAtMs - nowMs } : { kind: 'failed' }, false)
    }
  }

  #startAttempt (delivery: ClaimedDelivery): void {
    const endpoint = delivery.endpointId
    this.#inFlightByEndpoint.set(endpoint, (this.#inFlightByEndpoint.get(endpoint) ?? 0) + 1)
    const done = this.#attempt(delivery).catch((error: unknown) => {
      // Recording failed (Postgres): the lease expires and the delivery is tried again then.
      this.#deps.log.warn({ err: error, checkout_id: delivery.checkoutId, event_id: delivery.eventId, endpoint_id: endpoint },
        'recording a delivery attempt failed; it is retried when its lease expires')
    }).finally(() => {
      this.#inFlight.delete(delivery.deliveryId)
      const left = (this.#inFlightByEndpoint.get(endpoint) ?? 1) - 1
      if (left <= 0) this.#inFlightByEndpoint.delete(endpoint)
      else this.#inFlightByEndpoint.set(endpoint, left)
      // A slot came free, and the payment's next version may now be due.
      this.wake()
    })
    this.#inFlight.set(delivery.deliveryId, done)
  }

  async #attempt (delivery: ClaimedDelivery): Promise<void> {
    const { limits, log, pool } = this.#deps
    const attemptedAtMs = Date.now()
    const result = await this.#deps.send(delivery.url, delivery.eventId, delivery.body, delivery.secrets)
    const attempts = delivery.attempts + 1
    let outcome: DeliveryOutcome
    if (result.ok) outcome = { kind: 'succeeded' }
    else {
      const nowMs = Date.now()
      const next = afterFailure(attempts, nowMs, delivery.giveUpAtMs, limits)
      outcome = next.kind === 'retry' ? { kind: 'retry', delayMs: next.nextAttemptAtMs - nowMs } : { kind: 'failed' }
    }
    const streak = await recordAttempt(pool, delivery, { attemptedAtMs, latencyMs: result.latencyMs, httpStatus: result.httpStatus, error: result.error }, outcome)
    this.#deps.hooks?.onAttempt?.(outcome.kind, result.httpStatus, result.latencyMs)
    const fields = {
      checkout_id: delivery.checkoutId, event_id: delivery.eventId, endpoint_id: delivery.endpointId, version: delivery.version,
      attempt: attempts, http_status: result.httpStatus, latency_ms: Math.round(result.latencyMs),
    }
    if (outcome.kind === 'succeeded') log.debug(fields, 'webhook delivered')
    else log.info({ ...fields, error: result.error, outcome: outcome.kind }, outcome.kind === 'failed' ? 'webhook delivery failed for good' : 'webhook attempt failed; retrying')
    if (outcome.kind !== 'succeeded' && streak.status === 'enabled' && streak.failingSinceMs !== undefined &&
      shouldDisable(streak.consecutiveFailures, streak.failingSinceMs, Date.now(), limits)) {
      const reason = `${streak.consecutiveFailures} failed attempts in a row since ${new Date(streak.failingSinceMs).toISOString()}; last: ${result.error ?? 'failed'}`
      if (await disableEndpoint(pool, delivery.endpointId, reason)) {
        this.#deps.hooks?.onDisabled?.()
        log.warn({ endpoint_id: delivery.endpointId, merchant_id: delivery.merchantId, reason }, 'webhook endpoint disabled')
      }
    }
  }

  /** Stops claiming; waits up to drainMs for attempts in flight, then frees the leases of the rest. */
  async stop (drainMs: number): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
    const pending = [...this.#inFlight.values()]
    await Promise.race([Promise.allSettled(pending), new Promise((resolve) => setTimeout(resolve, drainMs).unref())])
    await releaseLeases(this.#deps.pool, [...this.#inFlight.keys()]).catch(() => {})
  }
}
