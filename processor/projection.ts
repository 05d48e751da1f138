// The Postgres projection of the nodes' change events. One statement per turn of the projection
// writer (events, payments, their refunds and the webhooks they carry: one commit, so one WAL
// flush): events are
// recorded once by event id (duplicates from redelivery or relay retries are dropped), and a
// payment row only ever moves to a higher version, so a late or duplicate event never moves a
// payment backwards.
//
// Only genuine events get here: the batch handler has checked each one's MAC under a key of the
// node it names (lib/event-signing.ts), and that its event id is `<node>:<sequence>`. This
// statement adds the check only Postgres can make (issue #17 part 3): an event for a payment that
// Postgres records as *another* node's is refused, not projected (nor its webhook or refunds), and
// returned to the caller, which dead-letters it. A node writes events only for the payments it
// owns (nginx routes a checkout id to one node, and a payment keeps its node), so this never
// refuses a genuine event; it stops one node's key (stolen) from moving another node's payments.

import type pg from 'pg'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { ChangeEvent, Payment } from '../lib/payment-codec.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import { sealWebhookPayloadColumn, type PaymentMethodColumnSealer } from './sealed-columns.ts'

const projectSql = `
WITH ev AS (
  SELECT * FROM unnest(
    $1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
    $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::timestamptz[], $17::bigint[], $40::bigint[], $41::bigint[], $43::text[]
  ) AS t(event_id, checkout_id, version, type, status, actor, occurred_at,
         merchant_id, node_id, amount, currency, payment_method, psp_reference, failure_code, failure_message,
         created_at, amount_refunded, amount_captured, amount_to_capture, psp_provider)
),
refused AS (
  -- Events naming another node than the one Postgres records for their payment (a payment is its
  -- merchant's checkout id).
  SELECT ev.event_id, p.node_id AS owner_node_id
  FROM ev JOIN payments p USING (merchant_id, checkout_id)
  WHERE p.node_id <> ev.node_id
),
wh AS (
  -- The webhooks the nodes accepted, one per PSP event id. Runs whether or not referenced.
  INSERT INTO webhooks (provider, psp_event_id, checkout_id, type, applied, received_at, payload, merchant_id)
  SELECT provider, psp_event_id, checkout_id, type, applied, received_at, payload, merchant_id
  FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::boolean[], $23::timestamptz[], $24::jsonb[], $38::text[], $42::text[])
    AS w(provider, psp_event_id, checkout_id, type, applied, received_at, payload, event_id, merchant_id)
  WHERE NOT EXISTS (SELECT 1 FROM refused WHERE refused.event_id = w.event_id)
  ON CONFLICT (provider, psp_event_id) DO NOTHING
),
rf AS (
  -- Every refund of every event's payment, at that payment version; the newest copy of each (one
  -- statement may not touch a row twice). Only ever moved to a higher version. Runs whether or
  -- not referenced.
  INSERT INTO refunds (refund_id, checkout_id, merchant_id, amount, currency, status, reason, psp_reference,
                       failure_code, failure_message, payment_version, created_at, updated_at)
  SELECT DISTINCT ON (refund_id) refund_id, checkout_id, merchant_id, amount, currency, status, reason,
         NULLIF(psp_reference, ''), NULLIF(failure_code, ''), NULLIF(failure_message, ''), payment_version, created_at, updated_at
  FROM unnest($25::text[], $26::text[], $27::text[], $28::bigint[], $29::text[], $30::text[], $31::text[], $32::text[],
              $33::text[], $34::text[], $35::bigint[], $36::timestamptz[], $37::timestamptz[], $39::text[])
    AS r(refund_id, checkout_id, merchant_id, amount, currency, status, reason, psp_reference,
         failure_code, failure_message, payment_version, created_at, updated_at, event_id)
  WHERE NOT EXISTS (SELECT 1 FROM refused WHERE refused.event_id = r.event_id)
  ORDER BY refund_id, payment_version DESC
  ON CONFLICT (refund_id) DO UPDATE SET
    status = EXCLUDED.status,
    psp_reference = COALESCE(EXCLUDED.psp_reference, refunds.psp_reference),
    failure_code = COALESCE(EXCLUDED.failure_code, refunds.failure_code),
    failure_message = COALESCE(EXCLUDED.failure_message, refunds.failure_message),
    payment_version = EXCLUDED.payment_version,
    updated_at = EXCLUDED.updated_at,
    projected_at = now()
  WHERE refunds.payment_version < EXCLUDED.payment_version
),
fresh AS (
  INSERT INTO payment_events (event_id, merchant_id, checkout_id, version, type, status, actor, occurred_at)
  SELECT event_id, merchant_id, checkout_id, version, type, status, actor, occurred_at FROM ev
  WHERE NOT EXISTS (SELECT 1 FROM refused WHERE refused.event_id = ev.event_id)
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
),
latest AS (
  SELECT DISTINCT ON (ev.merchant_id, ev.checkout_id) ev.*
  FROM ev JOIN fresh USING (event_id)
  ORDER BY ev.merchant_id, ev.checkout_id, ev.version DESC
),
upserted AS (
INSERT INTO payments (checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method,
                      psp_reference, failure_code, failure_message, created_at, updated_at, amount_refunded,
                      capture_method, amount_captured, amount_to_capture, psp_provider)
SELECT checkout_id, merchant_id, node_id, amount, currency, status, version, payment_method,
       NULLIF(psp_reference, ''), NULLIF(failure_code, ''), NULLIF(failure_message, ''), created_at, occurred_at, amount_refunded,
       CASE WHEN amount_captured IS NULL THEN 'automatic' ELSE 'manual' END, amount_captured, amount_to_capture, NULLIF(psp_provider, '')
FROM latest
ON CONFLICT (merchant_id, checkout_id) DO UPDATE SET
  status = EXCLUDED.status,
  version = EXCLUDED.version,
  amount_refunded = EXCLUDED.amount_refunded,
  amount_captured = EXCLUDED.amount_captured,
  amount_to_capture = EXCLUDED.amount_to_capture,
  psp_reference = COALESCE(EXCLUDED.psp_reference, payments.psp_reference),
  psp_provider = COALESCE(EXCLUDED.psp_provider, payments.psp_provider),
  failure_code = COALESCE(EXCLUDED.failure_code, payments.failure_code),
  failure_message = COALESCE(EXCLUDED.failure_message, payments.failure_message),
  updated_at = EXCLUDED.updated_at,
  projected_at = now()
WHERE payments.version < EXCLUDED.version
)
SELECT event_id, owner_node_id FROM refused
`

/**

 * Named: pg prepares it once per connection, and Postgres then skips parsing, analysing and (once
 * it settles on a generic plan) planning this five-part statement on every turn. The name carries
 * a version: a changed text needs a new name, or a connection would run the old one.
 */
const projectStatementName = 'ringpay_project_events_v6'

/**
 * Projects the events and records the webhooks they carry, in one statement. The payment method
 * and webhook bodies go in sealed (sealed-columns.ts). Returns the events refused as another
 * node's (event id → why), none of whose rows were written.
 */
export async function projectEvents (pool: pg.Pool, sealer: FieldSealer, methods: PaymentMethodColumnSealer, events: readonly ChangeEvent[]): Promise<Map<string, string>> {
  const refused = new Map<string, string>()
  if (events.length === 0) return refused
  const columns: unknown[][] = Array.from({ length: 17 }, () => [])
  // Manual capture (issue #14): $40 amount_captured, $41 amount_to_capture; NULL for an automatic
  // payment (its capture_method is derived from that in the statement).
  const amountsCaptured: Array<number | null> = []
  const amountsToCapture: Array<number | null> = []
  // Issue #16: $43 the routed PSP ($42: the webhooks' merchant ids) ('' before the claim: NULL, never overwriting a known one).
  const pspProviders: string[] = []
  for (const event of events) {
    const p = event.payment
    const row = [
      event.eventId, event.checkoutId, event.version, event.type, p.status, event.actor, new Date(event.occurredAtMs),
      p.merchantId, p.nodeId, p.amount, p.currency,
      // For every event (any may be the one that inserts the row; an update never changes the
      // method), sealed once per payment.
      methods.seal(p.merchantId, p.checkoutId, p.paymentMethod), p.pspReference, p.failureCode, p.failureMessage,
      new Date(p.createdAtMs), amountRefunded(p),
    ]
    row.forEach((value, i) => columns[i]!.push(value))
    const manual = p.captureMethod === 'manual'
    amountsCaptured.push(manual ? (p.amountCaptured ?? 0) : null)
    amountsToCapture.push(manual ? (p.amountToCapture ?? 0) : null)
    pspProviders.push(p.pspProvider ?? '')
  }
  const webhooks = webhookColumns(sealer, events)
  const refunds = refundColumns(events)
  const { rows } = await pool.query<{ event_id: string, owner_node_id: string }>({
    name: projectStatementName,
    text: projectSql,
    values: [...columns, ...webhooks.slice(0, 7), ...refunds.slice(0, 13), webhooks[7], refunds[13], amountsCaptured, amountsToCapture, webhooks[8], pspProviders],
  })
  for (const row of rows) {
    refused.set(row.event_id, `checkout id belongs to node ${row.owner_node_id} in Postgres`)
  }
  return refused
}

/** Succeeded refunds, as the node's view counts them. */
function amountRefunded (payment: Payment): number {
  let refunded = 0
  for (const refund of payment.refunds) if (refund.status === 'succeeded') refunded += refund.amount
  return refunded
}

/** Every refund of every event's payment, at that event's version, column by column (13 arrays + the event ids, maybe empty). */
function refundColumns (events: readonly ChangeEvent[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 14 }, () => [])
  for (const event of events) {
    const p = event.payment
    for (const r of p.refunds) {
      const row = [r.id, p.checkoutId, p.merchantId, r.amount, p.currency, r.status, r.reason, r.pspReference, r.failureCode,
        r.failureMessage, event.version, new Date(r.createdAtMs), new Date(r.updatedAtMs), event.eventId]
      row.forEach((value, i) => columns[i]!.push(value))
    }
  }
  return columns
}

/** Marks a payment (its merchant's checkout id) for a person to look at; the reason says what disagreed. */
export async function flagPayment (pool: pg.Pool, payment: PaymentId, reason: string): Promise<void> {
  await pool.query('UPDATE payments SET flagged_reason = $3 WHERE merchant_id = $1 AND checkout_id = $2',
    [payment.merchant_id, payment.checkout_id, reason.slice(0, 500)])
}

/** The webhook rows of the events that carry one, column by column (7 arrays + the event ids + the merchant ids, maybe empty). */
function webhookColumns (sealer: FieldSealer, events: readonly ChangeEvent[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: 9 }, () => [])
  for (const event of events) {
    const w = event.webhook
    if (w === undefined) continue
    // The body as received (its signature covered these bytes), sealed whole.
    const payload = sealWebhookPayloadColumn(sealer, w.provider, w.pspEventId, event.checkoutId, w.payloadJson)
    const row = [w.provider, w.pspEventId, event.checkoutId, w.type, w.applied, new Date(w.receivedAtMs), payload, event.eventId, event.payment.merchantId]
    row.forEach((value, i) => columns[i]!.push(value))
  }
  return columns
}
