// The notifier's Postgres statements (role ringpay_notifier: its four tables only). The pending
// rows of webhook_deliveries are the durable delivery queue: what the consumer wrote before
// committing its Kafka offsets, what the dispatcher claims by lease, what a restart resumes.

import type pg from 'pg'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { MerchantEvent } from './events.ts'
import { eventPayloadContext, openSecret, sealSecret } from './secrets.ts'

export interface EndpointRow {
  id: string
  merchant_id: string
  url: string
  events: string[]
  status: 'enabled' | 'disabled'
  disabled_reason: string | null
  disabled_at: Date | null
  consecutive_failures: number
  failing_since: Date | null
  previous_secret_expires_at: Date | null
  created_at: Date
}

const endpointColumns = 'id, merchant_id, url, events, status, disabled_reason, disabled_at, consecutive_failures, failing_since, previous_secret_expires_at, created_at'

/** A delivery claimed for one attempt, with what the attempt needs. */
export interface ClaimedDelivery {
  deliveryId: string
  endpointId: string
  merchantId: string
  eventId: string
  checkoutId: string
  version: number
  url: string
  /** Opened: the current secret first, then the previous one while its grace period runs. */
  secrets: string[]
  body: string
  /** Attempts made before this one. */
  attempts: number
  giveUpAtMs: number
}

export interface DueDelivery {
  deliveryId: string
  endpointId: string
}

/**
 * Records the merchant events of one consumed batch and a pending delivery for each enabled
 * endpoint subscribed to its type, in one statement (so both or neither). Only events of merchants
 * with at least one endpoint are kept; an event already recorded (a redelivered Kafka message)
 * makes nothing new, so an endpoint added since does not get old events. Returns the number of
 * deliveries made.
 */
export async function recordEvents (pool: pg.Pool, sealer: FieldSealer, events: readonly MerchantEvent[], retryWindowMs: number): Promise<number> {
  if (events.length === 0) return 0
  const unique = [...new Map(events.map((e) => [e.id, e])).values()]
  const result = await pool.query(`
    WITH input AS (
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::timestamptz[], $8::text[])
        AS t (id, merchant_id, type, checkout_id, version, change_event_id, created_at, payload_sealed)
    ), inserted AS (
      INSERT INTO merchant_events (id, merchant_id, type, checkout_id, version, change_event_id, created_at, payload_sealed)
      SELECT i.* FROM input i
      WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.merchant_id = i.merchant_id AND e.deleted_at IS NULL)
      ON CONFLICT (id) DO NOTHING
      RETURNING id, merchant_id, type, checkout_id, version
    )
    INSERT INTO webhook_deliveries (endpoint_id, event_id, checkout_id, version, give_up_at, next_attempt_at)
    SELECT e.id, i.id, i.checkout_id, i.version, now() + $9::bigint * interval '1 millisecond',
      -- Not due before an earlier version of the payment pending on the endpoint: the dispatcher
      -- would only skip it until then (a dead endpoint's backlog must not be rescanned every poll).
      GREATEST(now(), (SELECT max(p.next_attempt_at) FROM webhook_deliveries p
        WHERE p.endpoint_id = e.id AND p.checkout_id = i.checkout_id AND p.status = 'pending' AND p.version < i.version))
    FROM inserted i
    JOIN webhook_endpoints e ON e.merchant_id = i.merchant_id AND e.deleted_at IS NULL AND e.status = 'enabled'
      AND (i.type = ANY (e.events) OR '*' = ANY (e.events))
    ON CONFLICT (endpoint_id, event_id) DO NOTHING`, [
    unique.map((e) => e.id), unique.map((e) => e.merchantId), unique.map((e) => e.type), unique.map((e) => e.checkoutId),
    unique.map((e) => e.version), unique.map((e) => e.changeEventId), unique.map((e) => new Date(e.createdAtMs)),
    unique.map((e) => sealer.sealText(e.body, eventPayloadContext(e.merchantId, e.id))), retryWindowMs,
  ])
  return result.rowCount ?? 0
}

/**
 * Due deliveries that may be sent now, oldest due first, at most `perEndpointMax` per endpoint:
 * pending, due, not leased, of an enabled endpoint not in `endpointsAtCap`, and the earliest
 * pending version of their payment on their endpoint (a later version waits for the earlier one's
 * success or final failure: a receiver never sees version 3 before 2).
 */
export async function dueDeliveries (pool: pg.Pool, endpointsAtCap: readonly string[], perEndpointMax: number, limit: number): Promise<DueDelivery[]> {
  const { rows } = await pool.query<{ id: string, endpoint_id: string }>(`
    WITH due AS (
      SELECT d.id, d.endpoint_id, d.next_attempt_at,
        row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS rank
      FROM webhook_deliveries d
      JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled' AND e.deleted_at IS NULL
      WHERE d.status = 'pending' AND d.next_attempt_at <= now()
        AND (d.leased_until IS NULL OR d.leased_until < now())
        AND NOT (d.endpoint_id = ANY ($1::text[]))
        AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.checkout_id = d.checkout_id AND p.status = 'pending'
            AND (p.version < d.version OR (p.version = d.version AND p.id < d.id)))
    )
    SELECT id, endpoint_id FROM due WHERE rank <= $2 ORDER BY next_attempt_at, id LIMIT $3`, [endpointsAtCap, perEndpointMax, limit])
  return rows.map((r) => ({ deliveryId: r.id, endpointId: r.endpoint_id }))
}

/** A leased delivery whose secret or body did not open (a field key this notifier lacks): no attempt can be made. */
export interface UnopenableDelivery {
  delivery: Omit<ClaimedDelivery, 'secrets' | 'body'>
  error: Error
}

/**
 * Leases the given deliveries for one attempt each (those still pending and free: another
 * notifier may have taken some) and returns what the attempts need, secrets and bodies opened.
 * One that does not open is returned apart, so it cannot hold back the others.
 */
export async function leaseDeliveries (pool: pg.Pool, sealer: FieldSealer, ids: readonly string[], leaseMs: number): Promise<{ claimed: ClaimedDelivery[], unopenable: UnopenableDelivery[] }> {
  const claimed: ClaimedDelivery[] = []
  const unopenable: UnopenableDelivery[] = []
  if (ids.length === 0) return { claimed, unopenable }
  const { rows } = await pool.query<{
    id: string, endpoint_id: string, merchant_id: string, event_id: string, checkout_id: string, version: string, url: string,
    secret_sealed: string, previous_secret_sealed: string | null, previous_secret_expires_at: Date | null, payload_sealed: string,
    attempts: number, give_up_at: Date
  }>(`
    UPDATE webhook_deliveries d SET leased_until = now() + $2::bigint * interval '1 millisecond'
    FROM merchant_events ev, webhook_endpoints e
    WHERE d.id = ANY ($1::bigint[]) AND d.status = 'pending' AND (d.leased_until IS NULL OR d.leased_until < now())
      AND ev.id = d.event_id AND e.id = d.endpoint_id AND e.status = 'enabled' AND e.deleted_at IS NULL
    RETURNING d.id, d.endpoint_id, e.merchant_id, d.event_id, d.checkout_id, d.version, e.url, e.secret_sealed,
      e.previous_secret_sealed, e.previous_secret_expires_at, ev.payload_sealed, d.attempts, d.give_up_at`, [ids, leaseMs])
  const nowMs = Date.now()
  for (const r of rows) {
    const delivery = {
      deliveryId: r.id,
      endpointId: r.endpoint_id,
      merchantId: r.merchant_id,
      eventId: r.event_id,
      checkoutId: r.checkout_id,
      version: Number(r.version),
      url: r.url,
      attempts: r.attempts,
      giveUpAtMs: r.give_up_at.getTime(),
    }
    try {
      const secrets = [openSecret(sealer, r.merchant_id, r.endpoint_id, 'current', r.secret_sealed)]
      if (r.previous_secret_sealed !== null && r.previous_secret_expires_at !== null && r.previous_secret_expires_at.getTime() > nowMs) {
        secrets.push(openSecret(sealer, r.merchant_id, r.endpoint_id, 'previous', r.previous_secret_sealed))
      }
      claimed.push({ ...delivery, secrets, body: sealer.openText(r.payload_sealed, eventPayloadContext(r.merchant_id, r.event_id)) })
    } catch (error) {
      unopenable.push({ delivery, error: error as Error })
    }
  }
  return { claimed, unopenable }
}

export interface AttemptRecord {
  attemptedAtMs: number
  latencyMs: number
  httpStatus: number | undefined
  error: string | undefined
}

export type DeliveryOutcome =
  | { kind: 'succeeded' }
  /** Due again this long after the attempt is recorded (Postgres' clock, like every due time). */
  | { kind: 'retry', delayMs: number }
  | { kind: 'failed' }

/** What the endpoint's failure streak is after an attempt was recorded. */
export interface EndpointStreak {
  consecutiveFailures: number
  failingSinceMs: number | undefined
  status: 'enabled' | 'disabled'
}

/**
 * Records one attempt and settles its delivery (succeeded, retry later, failed for good) and the
 * endpoint's failure streak, in ONE statement (data-modifying CTEs: atomic, one round trip); the
 * lease is released. A retry also pushes the payment's later versions on this endpoint back to
 * the retry's time (they wait for it; in SQL, so the time stays Postgres' own to the microsecond).
 */
export async function recordAttempt (pool: pg.Pool, delivery: Pick<ClaimedDelivery, 'deliveryId' | 'endpointId' | 'eventId'>, attempt: AttemptRecord,
  outcome: DeliveryOutcome, countsForEndpoint = true): Promise<EndpointStreak> {
  const status = outcome.kind === 'succeeded' ? 'succeeded' : outcome.kind === 'failed' ? 'failed' : 'pending'
  const { rows } = await pool.query<{ consecutive_failures: number, failing_since: Date | null, status: 'enabled' | 'disabled' }>(`
    WITH attempt AS (
      INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempted_at, latency_ms, http_status, error)
      VALUES ($1, $2, $3, $4, $5, $6, $7)
    ), delivery AS (
      UPDATE webhook_deliveries SET status = $8, attempts = attempts + 1, leased_until = NULL,
        next_attempt_at = COALESCE(now() + $9::bigint * interval '1 millisecond', next_attempt_at),
        last_http_status = $6, last_error = $7, updated_at = now()
      WHERE id = $1 AND status = 'pending'
      RETURNING endpoint_id, checkout_id, version, status, next_attempt_at
    ), pushed AS (
      UPDATE webhook_deliveries d SET next_attempt_at = s.next_attempt_at
      FROM delivery s
      WHERE s.status = 'pending' AND d.endpoint_id = s.endpoint_id AND d.checkout_id = s.checkout_id
        AND d.status = 'pending' AND d.version > s.version AND d.next_attempt_at < s.next_attempt_at
    )
    UPDATE webhook_endpoints SET
      consecutive_failures = CASE WHEN $10 THEN 0 ELSE consecutive_failures + 1 END,
      failing_since = CASE WHEN $10 THEN NULL ELSE COALESCE(failing_since, $4) END
    -- A success on an endpoint that was not failing changes nothing: no write of its hot row. A
    -- failure that is ours, not the endpoint's (a value we could not open), does not count.
    WHERE id = $2 AND $11 AND (NOT $10 OR consecutive_failures <> 0 OR failing_since IS NOT NULL)
    RETURNING consecutive_failures, failing_since, status`, [
    delivery.deliveryId, delivery.endpointId, delivery.eventId, new Date(attempt.attemptedAtMs), Math.round(attempt.latencyMs),
    attempt.httpStatus ?? null, attempt.error ?? null, status, outcome.kind === 'retry' ? Math.round(outcome.delayMs) : null,
    outcome.kind === 'succeeded', countsForEndpoint,
  ])
  const row = rows[0]
  if (row === undefined) return { consecutiveFailures: 0, failingSinceMs: undefined, status: 'enabled' }
  return { consecutiveFailures: row.consecutive_failures, failingSinceMs: row.failing_since?.getTime(), status: row.status }
}

/**
 * Disables an endpoint (once: an endpoint already disabled keeps its first reason), and fails its
 * pending deliveries with the reason: nothing more is sent to it, the merchant sees which events
 * it missed (GET /events) and can redeliver them elsewhere, and the queue keeps no backlog of it.
 */
export async function disableEndpoint (pool: pg.Pool, endpointId: string, reason: string): Promise<boolean> {
  const { rows } = await pool.query(`
    WITH disabled AS (
      UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, disabled_at = now()
      WHERE id = $1 AND status = 'enabled' RETURNING id
    ), failed AS (
      UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint disabled', updated_at = now()
      WHERE endpoint_id IN (SELECT id FROM disabled) AND status = 'pending'
    )
    SELECT id FROM disabled`, [endpointId, reason])
  return rows.length === 1
}

/** Releases leases held by a notifier that stops before its attempts finished. */
export async function releaseLeases (pool: pg.Pool, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return
  await pool.query('UPDATE webhook_deliveries SET leased_until = NULL WHERE id = ANY ($1::bigint[]) AND status = \'pending\'', [ids])
}

// ---- endpoints (the merchant API) ----

export class EndpointLimitReached extends Error {
  readonly code = 'webhook_endpoint_limit_reached'
  constructor (limit: number) {
    super(`webhook_endpoint_limit_reached: at most ${limit} endpoints per merchant`)
    this.name = 'EndpointLimitReached'
  }
}

export async function createEndpoint (pool: pg.Pool, sealer: FieldSealer, input: { id: string, merchantId: string, url: string, events: string[], secret: string },
  endpointsPerMerchantMax: number): Promise<EndpointRow> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    // Two creates of one merchant at once must not both pass the count.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`webhook_endpoints/${input.merchantId}`])
    const { rows: [count] } = await client.query<{ n: string }>('SELECT count(*) AS n FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL', [input.merchantId])
    if (Number(count!.n) >= endpointsPerMerchantMax) throw new EndpointLimitReached(endpointsPerMerchantMax)
    const { rows } = await client.query<EndpointRow>(`INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret_sealed)
      VALUES ($1, $2, $3, $4, $5) RETURNING ${endpointColumns}`,
    [input.id, input.merchantId, input.url, input.events, sealSecret(sealer, input.merchantId, input.id, 'current', input.secret)])
    await client.query('COMMIT')
    return rows[0]!
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

export async function listEndpoints (pool: pg.Pool, merchantId: string): Promise<EndpointRow[]> {
  const { rows } = await pool.query<EndpointRow>(`SELECT ${endpointColumns} FROM webhook_endpoints
    WHERE merchant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, [merchantId])
  return rows
}

/**
 * Enables a disabled endpoint again (its failure streak reset). What it missed while disabled
 * stays failed: the merchant redelivers what it wants. Undefined when it is not the merchant's.
 */
export async function enableEndpoint (pool: pg.Pool, merchantId: string, endpointId: string): Promise<EndpointRow | undefined> {
  const { rows } = await pool.query<EndpointRow>(`UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = NULL, disabled_at = NULL,
      consecutive_failures = 0, failing_since = NULL
    WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL RETURNING ${endpointColumns}`, [endpointId, merchantId])
  return rows[0]
}

/** Soft delete: its pending deliveries fail (nothing more is sent), its history stays. */
export async function deleteEndpoint (pool: pg.Pool, merchantId: string, endpointId: string): Promise<boolean> {
  const { rows } = await pool.query(`
    WITH deleted AS (
      UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL RETURNING id
    ), failed AS (
      UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted', updated_at = now()
      WHERE endpoint_id IN (SELECT id FROM deleted) AND status = 'pending'
    )
    SELECT id FROM deleted`, [endpointId, merchantId])
  return rows.length === 1
}

/**
 * A new secret; the current one becomes the previous one, valid (and signing) for `gracePeriodS`
 * more (0: at once invalid). Returns the endpoint, or undefined when it is not the merchant's.
 */
export async function rollSecret (pool: pg.Pool, sealer: FieldSealer, merchantId: string, endpointId: string, newSecret: string, gracePeriodS: number): Promise<EndpointRow | undefined> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const { rows: [current] } = await client.query<{ secret_sealed: string }>(
      'SELECT secret_sealed FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL FOR UPDATE', [endpointId, merchantId])
    if (current === undefined) {
      await client.query('ROLLBACK')
      return undefined
    }
    const previous = gracePeriodS > 0
      ? sealSecret(sealer, merchantId, endpointId, 'previous', openSecret(sealer, merchantId, endpointId, 'current', current.secret_sealed))
      : null
    const { rows } = await client.query<EndpointRow>(`UPDATE webhook_endpoints SET secret_sealed = $3, previous_secret_sealed = $4,
        previous_secret_expires_at = CASE WHEN $4::text IS NULL THEN NULL ELSE now() + $5::bigint * interval '1 second' END
      WHERE id = $1 AND merchant_id = $2 RETURNING ${endpointColumns}`,
    [endpointId, merchantId, sealSecret(sealer, merchantId, endpointId, 'current', newSecret), previous, gracePeriodS])
    await client.query('COMMIT')
    return rows[0]
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

// ---- events (the merchant API) ----

export interface EventListQuery {
  limit: number
  startingAfter: string | undefined
  type: string | undefined
  checkoutId: string | undefined
}

export class UnknownEventCursor extends Error {
  constructor () {
    super('starting_after names none of your events')
    this.name = 'UnknownEventCursor'
  }
}

/** A merchant's events newest first, keyset pages on (created_at, id), each with its deliveries. */
export async function listEvents (pool: pg.Pool, sealer: FieldSealer, merchantId: string, q: EventListQuery): Promise<{ items: Array<Record<string, unknown>>, hasMore: boolean }> {
  const params: unknown[] = [merchantId, q.limit + 1]
  let cursor = ''
  if (q.startingAfter !== undefined) {
    const { rows } = await pool.query<{ created_at: Date }>('SELECT created_at FROM merchant_events WHERE id = $1 AND merchant_id = $2', [q.startingAfter, merchantId])
    if (rows.length === 0) throw new UnknownEventCursor()
    params.push(rows[0]!.created_at, q.startingAfter)
    cursor = `AND (ev.created_at, ev.id) < ($${params.length - 1}, $${params.length})`
  }
  let filters = ''
  if (q.type !== undefined) {
    params.push(q.type)
    filters += ` AND ev.type = $${params.length}`
  }
  if (q.checkoutId !== undefined) {
    params.push(q.checkoutId)
    filters += ` AND ev.checkout_id = $${params.length}`
  }
  const { rows } = await pool.query<{ id: string, payload_sealed: string, deliveries: Array<Record<string, unknown>> | null }>(`
    SELECT ev.id, ev.payload_sealed,
      (SELECT json_agg(json_build_object('endpoint_id', d.endpoint_id, 'status', d.status, 'attempts', d.attempts,
          'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
          'last_http_status', d.last_http_status, 'last_error', d.last_error) ORDER BY d.endpoint_id)
       FROM webhook_deliveries d WHERE d.event_id = ev.id) AS deliveries
    FROM merchant_events ev
    WHERE ev.merchant_id = $1 ${cursor}${filters}
    ORDER BY ev.created_at DESC, ev.id DESC
    LIMIT $2`, params)
  const hasMore = rows.length > q.limit
  const items = rows.slice(0, q.limit).map((r) => {
    const event = JSON.parse(sealer.openText(r.payload_sealed, eventPayloadContext(merchantId, r.id))) as Record<string, unknown>
    event.deliveries = r.deliveries ?? []
    return event
  })
  return { items, hasMore }
}

export class EventNotFound extends Error {
  readonly code = 'event_not_found'
  constructor () { super('event_not_found: no such event of this merchant'); this.name = 'EventNotFound' }
}
export class EndpointNotFound extends Error {
  readonly code = 'webhook_endpoint_not_found'
  constructor () { super('webhook_endpoint_not_found: no such endpoint of this merchant'); this.name = 'EndpointNotFound' }
}
export class EndpointDisabled extends Error {
  readonly code = 'webhook_endpoint_disabled'
  constructor () { super('webhook_endpoint_disabled: the endpoint is disabled'); this.name = 'EndpointDisabled' }
}

/**
 * One event of the merchant with its deliveries, each with every attempt (newest first, at most
 * attemptsPerDeliveryMax of them), or undefined when it is not the merchant's.
 */
export async function getEvent (pool: pg.Pool, sealer: FieldSealer, merchantId: string, eventId: string, attemptsPerDeliveryMax: number): Promise<Record<string, unknown> | undefined> {
  const { rows: [row] } = await pool.query<{ payload_sealed: string, deliveries: Array<Record<string, unknown>> | null }>(`
    SELECT ev.payload_sealed,
      (SELECT json_agg(json_build_object('endpoint_id', d.endpoint_id, 'status', d.status, 'attempts', d.attempts,
          'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
          'last_http_status', d.last_http_status, 'last_error', d.last_error,
          'attempt_log', COALESCE((SELECT json_agg(json_build_object('attempted_at', a.attempted_at, 'latency_ms', a.latency_ms,
              'http_status', a.http_status, 'error', a.error) ORDER BY a.attempted_at DESC, a.id DESC)
            FROM (SELECT * FROM webhook_attempts WHERE delivery_id = d.id ORDER BY attempted_at DESC, id DESC LIMIT $3) a), '[]'::json))
        ORDER BY d.endpoint_id)
       FROM webhook_deliveries d WHERE d.event_id = ev.id) AS deliveries
    FROM merchant_events ev WHERE ev.id = $1 AND ev.merchant_id = $2`, [eventId, merchantId, attemptsPerDeliveryMax])
  if (row === undefined) return undefined
  const event = JSON.parse(sealer.openText(row.payload_sealed, eventPayloadContext(merchantId, eventId))) as Record<string, unknown>
  event.deliveries = row.deliveries ?? []
  return event
}

/**
 * Sends an event again: to one endpoint of the merchant (a delivery made if it had none), or to
 * every endpoint it was delivered to (still enabled). Each delivery is pending again at once with
 * a fresh retry window. (One in flight at that moment is settled by that attempt's outcome: the
 * receiver gets the event once more either way.) Returns the endpoint ids.
 */
export async function redeliver (pool: pg.Pool, merchantId: string, eventId: string, endpointId: string | undefined, retryWindowMs: number): Promise<string[]> {
  const { rows: [event] } = await pool.query<{ checkout_id: string, version: string }>(
    'SELECT checkout_id, version FROM merchant_events WHERE id = $1 AND merchant_id = $2', [eventId, merchantId])
  if (event === undefined) throw new EventNotFound()
  if (endpointId !== undefined) {
    const { rows: [endpoint] } = await pool.query<{ status: string }>(
      'SELECT status FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL', [endpointId, merchantId])
    if (endpoint === undefined) throw new EndpointNotFound()
    if (endpoint.status !== 'enabled') throw new EndpointDisabled()
    await pool.query(`INSERT INTO webhook_deliveries (endpoint_id, event_id, checkout_id, version, give_up_at)
      VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 millisecond')
      ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = now(),
        give_up_at = EXCLUDED.give_up_at, updated_at = now()`, [endpointId, eventId, event.checkout_id, event.version, retryWindowMs])
    return [endpointId]
  }
  const { rows } = await pool.query<{ endpoint_id: string }>(`UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(),
      give_up_at = now() + $2::bigint * interval '1 millisecond', updated_at = now()
    FROM webhook_endpoints e
    WHERE d.event_id = $1 AND e.id = d.endpoint_id AND e.status = 'enabled' AND e.deleted_at IS NULL
    RETURNING d.endpoint_id`, [eventId, retryWindowMs])
  return rows.map((r) => r.endpoint_id).sort()
}

/** Pending deliveries and the age of the oldest due one, for metrics. */
export async function queueStats (pool: pg.Pool): Promise<{ pending: number, oldestDueAgeS: number }> {
  const { rows: [row] } = await pool.query<{ pending: string, oldest: Date | null }>(`
    SELECT count(*) AS pending, min(d.next_attempt_at) FILTER (WHERE d.next_attempt_at <= now()) AS oldest
    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'enabled' AND e.deleted_at IS NULL
    WHERE d.status = 'pending'`)
  return { pending: Number(row!.pending), oldestDueAgeS: row!.oldest === null ? 0 : Math.max(0, (Date.now() - row!.oldest.getTime()) / 1000) }
}
