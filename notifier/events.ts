// From a node's change event to the merchant's event (pure). One change event makes at most one
// merchant event; its id is derived from the change event's id (and checkout id), so a Kafka
// redelivery, a relay retry or a DLQ replay of the same change makes the very same event, and a
// receiver deduplicates by it.

import { createHash } from 'node:crypto'
import type { ChangeEvent } from '../lib/payment-codec.ts'
import { paymentView, refundView } from '../payment-svc/payment-view.ts'

export const merchantEventTypes = [
  'payment.created', 'payment.processing', 'payment.requires_action', 'payment.succeeded', 'payment.failed', 'payment.canceled',
  // Manual capture (issue #14): authorized, waiting for the merchant's capture; its capture asked for.
  'payment.requires_capture', 'payment.capture_requested',
  'refund.created', 'refund.succeeded', 'refund.failed',
] as const
export type MerchantEventType = typeof merchantEventTypes[number]
const knownTypes: ReadonlySet<string> = new Set(merchantEventTypes)

export function isMerchantEventType (value: string): value is MerchantEventType {
  return knownTypes.has(value)
}

/** What an endpoint subscribes to: event types, or '*' for all (also those added later). */
export const allEventsWildcard = '*'

export interface MerchantEvent {
  id: string
  merchantId: string
  type: MerchantEventType
  checkoutId: string
  version: number
  changeEventId: string
  createdAtMs: number
  /** The JSON body sent to endpoints, byte for byte the same on every attempt. */
  body: string
}

/** `evt_` + 32 hex of SHA-256 of the change event id and checkout id: stable, unguessable order. */
export function merchantEventId (changeEventId: string, checkoutId: string): string {
  const hex = createHash('sha256').update(`${changeEventId}\u0000${checkoutId}`).digest('hex').slice(0, 32)
  // The 16 hex values as the letters a-p: an id with digits could hold a Luhn-valid run of 13+,
  // which every API refuses in a path as a card number (one id in ~300 did: GET /events/{id}
  // answered 400 card_number_detected for a genuine event).
  return `evt_${hex.replace(/[0-9a-f]/g, (c) => letterOfHex[c]!)}`
}

const letterOfHex: Readonly<Record<string, string>> = Object.fromEntries([...'0123456789abcdef'].map((c, i) => [c, String.fromCharCode(97 + i)]))

/**
 * The merchant event type of a change, or undefined when the merchant sees no change: a PSP
 * webhook that only confirmed or disagreed (`payment.webhook_received` leaves the payment as it
 * was, same version), or a refund update whose refund is gone (never: refunds are kept).
 */
export function merchantEventTypeOf (event: ChangeEvent): MerchantEventType | undefined {
  switch (event.type) {
    case 'payment.created':
      return 'payment.created'
    case 'payment.status_changed': {
      const type = `payment.${event.payment.status}`
      // `pending` is only ever the created status; anything unknown is not invented here.
      return isMerchantEventType(type) && type !== 'payment.created' ? type : undefined
    }
    case 'payment.refund_created':
      return 'refund.created'
    case 'payment.refund_updated': {
      const refund = event.payment.refunds.find((r) => r.id === event.refundId)
      if (refund === undefined || refund.status === 'pending') return undefined
      return refund.status === 'succeeded' ? 'refund.succeeded' : 'refund.failed'
    }
    case 'payment.capture_requested':
      // The merchant's own capture, recorded; `payment.succeeded` (with amount_captured) follows.
      return 'payment.capture_requested'
    case 'payment.webhook_received':
      return undefined
  }
}

/**
 * The merchant event of a change, or undefined. The object is the payment exactly as
 * `GET /payments/{id}` shows it at that version (payment-svc/payment-view.ts: only what the
 * merchant sent or the payment's outcome; a card number never reaches a payment, the node refuses
 * it at the door); a refund event also carries the refund.
 */
export function merchantEventOf (event: ChangeEvent): MerchantEvent | undefined {
  const type = merchantEventTypeOf(event)
  if (type === undefined) return undefined
  const id = merchantEventId(event.eventId, event.checkoutId)
  const data: Record<string, unknown> = { object: paymentView(event.payment) }
  if (type.startsWith('refund.')) {
    const refund = event.payment.refunds.find((r) => r.id === event.refundId)
    if (refund !== undefined) data.refund = refundView(event.payment, refund)
  }
  const body = JSON.stringify({
    id,
    object: 'event',
    type,
    created: new Date(event.occurredAtMs).toISOString(),
    checkout_id: event.checkoutId,
    version: event.version,
    data,
  })
  return {
    id,
    merchantId: event.payment.merchantId,
    type,
    checkoutId: event.checkoutId,
    version: event.version,
    changeEventId: event.eventId,
    createdAtMs: event.occurredAtMs,
    body,
  }
}
