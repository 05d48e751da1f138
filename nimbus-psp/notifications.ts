// Nimbus' notifications (issue #16): the engine's Stripe-like webhook events, turned into Adyen-like
// notification items (eventCode, success, pspReference, merchantReference, amount {value,
// currency}), each signed on its own (signature.ts), and sent in batches: one POST carries every
// item about one payment that came due within `batchWindowMs` (at most `itemsPerBatchMax`). A
// batch goes to <notificationBaseUrl>/webhooks/psp/nimbus/<merchantReference>, since the node that
// owns a payment is found by the checkout id in the path.
//
// Durability is the engine's: each item is one engine delivery held open until its batch was
// accepted (2xx), then answered 200; a refused or failed batch answers its deliveries 503 and the
// engine's outbox retries them with its backoff. Nothing is lost across a restart: an item not yet
// acknowledged is still in the engine's outbox.

import { Agent, request } from 'undici'
import type { Logger } from '../lib/log.ts'
import { signItem, type NotificationItem } from './signature.ts'

export const nimbusWebhookPathPrefix = '/webhooks/psp/nimbus/'

export interface NotificationLimits {
  /** How long the first item of a batch waits for others about the same payment. */
  batchWindowMs: number
  itemsPerBatchMax: number
  /** Items waiting in all batches; past it an engine delivery is refused (503) and retried later. */
  itemsQueuedMax: number
  /** One batch delivery, whole: connect, send, answer. */
  deliveryTimeoutMs: number
}

export const defaultNotificationLimits: NotificationLimits = {
  batchWindowMs: 50,
  itemsPerBatchMax: 10,
  itemsQueuedMax: 10_000,
  deliveryTimeoutMs: 10_000,
}

interface Waiting { item: NotificationItem, done: (delivered: boolean) => void }

/** The engine's event (a charge or refund object in data.object) as an item; undefined: not sent. */
export function itemOfEngineEvent (event: any): NotificationItem | undefined {
  const object = event?.data?.object
  if (typeof event?.type !== 'string' || typeof object !== 'object' || object === null) return undefined
  // The merchant account the payment was made under (one per merchant of the platform).
  const merchantAccountCode = String(object.merchant_id ?? '')
  const eventDate = new Date(((typeof event.created === 'number' ? event.created : 0) * 1000) || Date.now()).toISOString()
  const amount = { value: object.amount, currency: object.currency }
  const reason = [object.failure_code, object.failure_message].filter((s) => typeof s === 'string' && s !== '').join(': ')
  switch (event.type) {
    case 'charge.succeeded':
    case 'charge.failed':
      return {
        eventCode: 'AUTHORISATION', success: event.type === 'charge.succeeded' ? 'true' : 'false',
        pspReference: object.id, merchantAccountCode, merchantReference: object.reference, amount, eventDate,
        ...(reason !== '' ? { reason } : {}),
      }
    case 'charge.canceled':
      return { eventCode: 'CANCELLATION', success: 'true', pspReference: object.id, originalReference: object.id, merchantAccountCode, merchantReference: object.reference, amount, eventDate }
    case 'refund.succeeded':
    case 'refund.failed':
      return {
        eventCode: 'REFUND', success: event.type === 'refund.succeeded' ? 'true' : 'false',
        pspReference: object.id, originalReference: object.charge, merchantAccountCode, merchantReference: object.payment_reference, amount, eventDate,
        ...(reason !== '' ? { reason } : {}),
        additionalData: { modificationReference: object.reference },
      }
    // Pending states, the customer's action and authorizations are answered on the API, not notified.
    default: return undefined
  }
}

export class NotificationBatcher {
  readonly #limits: NotificationLimits
  readonly #hmacKey: string
  readonly #baseUrl: () => string | null
  readonly #log: Logger
  readonly #agent: Agent
  readonly #batches = new Map<string, Waiting[]>()
  #queued = 0
  batchesSent = 0
  itemsSent = 0

  constructor (options: { limits: NotificationLimits, hmacKey: string, baseUrl: () => string | null, log: Logger }) {
    this.#limits = options.limits
    this.#hmacKey = options.hmacKey
    this.#baseUrl = options.baseUrl
    this.#log = options.log
    this.#agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 })
  }

  get queued (): number { return this.#queued }

  /** Resolves true once the item went out in an accepted batch, false if it must be retried. */
  enqueue (item: NotificationItem): Promise<boolean> {
    if (this.#queued >= this.#limits.itemsQueuedMax || this.#baseUrl() === null) return Promise.resolve(false)
    const signed: NotificationItem = { ...item, additionalData: { ...item.additionalData, hmacSignature: signItem(this.#hmacKey, item) } }
    return new Promise((resolve) => {
      const reference = item.merchantReference
      let batch = this.#batches.get(reference)
      if (batch === undefined) {
        batch = []
        this.#batches.set(reference, batch)
        setTimeout(() => { void this.#flush(reference) }, this.#limits.batchWindowMs)
      }
      batch.push({ item: signed, done: resolve })
      this.#queued++
      if (batch.length >= this.#limits.itemsPerBatchMax) void this.#flush(reference)
    })
  }

  async #flush (reference: string): Promise<void> {
    const batch = this.#batches.get(reference)
    if (batch === undefined) return
    this.#batches.delete(reference)
    this.#queued -= batch.length
    const baseUrl = this.#baseUrl()
    let delivered = false
    if (baseUrl !== null) {
      const body = JSON.stringify({ live: 'false', notificationItems: batch.map((w) => ({ NotificationRequestItem: w.item })) })
      try {
        const res = await request(baseUrl + nimbusWebhookPathPrefix + encodeURIComponent(reference), {
          method: 'POST',
          dispatcher: this.#agent,
          headers: { 'content-type': 'application/json', 'user-agent': 'Ringpay-Nimbus-PSP/1.0' },
          body,
          signal: AbortSignal.timeout(this.#limits.deliveryTimeoutMs),
        })
        await res.body.dump()
        delivered = res.statusCode >= 200 && res.statusCode <= 299
        if (!delivered) this.#log.warn({ checkout_id: reference, status: res.statusCode, items: batch.length }, 'notification batch refused')
      } catch (error) {
        this.#log.warn({ checkout_id: reference, err: error, items: batch.length }, 'notification batch failed')
      }
    }
    if (delivered) {
      this.batchesSent++
      this.itemsSent += batch.length
    }
    for (const waiting of batch) waiting.done(delivered)
  }

  async close (): Promise<void> {
    for (const reference of [...this.#batches.keys()]) {
      const batch = this.#batches.get(reference)!
      this.#batches.delete(reference)
      this.#queued -= batch.length
      for (const waiting of batch) waiting.done(false)
    }
    await this.#agent.close()
  }
}
