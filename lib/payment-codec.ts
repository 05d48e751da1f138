// Protobuf encoding of stored payments, change events and node metadata (schemas in proto/).
// Decoded values are checked right after reading, before anyone trusts them.

import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'

// int64 fields decode to plain numbers (every value we write is a validated safe integer; the
// decoder asserts that on the way back), so no Long objects leak into the code.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long
protobuf.configure()

export const schemaVersion = 1

export const paymentStatuses = ['pending', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled'] as const
export type PaymentStatus = typeof paymentStatuses[number]
export const terminalStatuses: ReadonlySet<PaymentStatus> = new Set(['succeeded', 'failed', 'canceled'])

export const eventTypes = ['payment.created', 'payment.status_changed', 'payment.webhook_received'] as const
export type EventType = typeof eventTypes[number]

export interface Payment {
  checkoutId: string
  merchantId: string
  amount: number
  currency: string
  paymentMethod: string
  description: string
  customerRef: string
  metadata: Record<string, string>
  status: PaymentStatus
  version: number
  createdAtMs: number
  updatedAtMs: number
  requestHash: Uint8Array
  failureCode: string
  failureMessage: string
  pspReference: string
  nodeId: string
}

export interface ChangeEvent {
  eventId: string
  nodeId: string
  sequence: number
  type: EventType
  checkoutId: string
  version: number
  occurredAtMs: number
  payment: Payment
  /** Status before this change; undefined for payment.created. */
  previousStatus: PaymentStatus | undefined
  actor: string
  /** The PSP webhook behind this event, if one was. */
  webhook: WebhookReceipt | undefined
}

export interface WebhookReceipt {
  provider: string
  pspEventId: string
  type: string
  payloadJson: string
  applied: boolean
  note: string
  receivedAtMs: number
}

export interface NodeMeta {
  nodeId: string
  nextSequence: number
  createdAtMs: number
}

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/payments.proto', import.meta.url)))
const paymentType = root.lookupType('ringpay.v1.Payment')
const changeEventType = root.lookupType('ringpay.v1.ChangeEvent')
const nodeMetaType = root.lookupType('ringpay.v1.NodeMeta')

// Wire enum value = index + 1 (0 is UNSPECIFIED).
function statusToWire (status: PaymentStatus): number {
  return paymentStatuses.indexOf(status) + 1
}
function statusFromWire (value: number): PaymentStatus {
  const status = paymentStatuses[value - 1]
  assert.ok(status !== undefined, `unknown payment status on the wire: ${value}`)
  return status
}

function paymentToWire (payment: Payment): Record<string, unknown> {
  return {
    schemaVersion,
    checkoutId: payment.checkoutId,
    merchantId: payment.merchantId,
    amount: payment.amount,
    currency: payment.currency,
    paymentMethod: payment.paymentMethod,
    description: payment.description,
    customerRef: payment.customerRef,
    metadata: payment.metadata,
    status: statusToWire(payment.status),
    version: payment.version,
    createdAtMs: payment.createdAtMs,
    updatedAtMs: payment.updatedAtMs,
    requestHash: payment.requestHash,
    failureCode: payment.failureCode,
    failureMessage: payment.failureMessage,
    pspReference: payment.pspReference,
    nodeId: payment.nodeId,
  }
}

function paymentFromWire (wire: Record<string, any>): Payment {
  const payment: Payment = {
    checkoutId: wire.checkoutId,
    merchantId: wire.merchantId,
    amount: wire.amount,
    currency: wire.currency,
    paymentMethod: wire.paymentMethod,
    description: wire.description,
    customerRef: wire.customerRef,
    metadata: { ...wire.metadata },
    status: statusFromWire(wire.status),
    version: wire.version,
    createdAtMs: wire.createdAtMs,
    updatedAtMs: wire.updatedAtMs,
    requestHash: wire.requestHash,
    failureCode: wire.failureCode,
    failureMessage: wire.failureMessage,
    pspReference: wire.pspReference,
    nodeId: wire.nodeId,
  }
  assertPayment(payment)
  return payment
}

/** The checks a payment must pass before it is written and after it is read back. */
export function assertPayment (payment: Payment): void {
  assert.ok(payment.checkoutId.length > 0, 'payment without checkout id')
  assert.ok(Number.isSafeInteger(payment.amount) && payment.amount > 0, `payment ${payment.checkoutId}: bad amount`)
  assert.ok(/^[A-Z]{3}$/.test(payment.currency), `payment ${payment.checkoutId}: bad currency`)
  assert.ok(Number.isSafeInteger(payment.version) && payment.version >= 1, `payment ${payment.checkoutId}: bad version`)
  assert.ok(payment.requestHash.length === 32, `payment ${payment.checkoutId}: bad request hash`)
}

export function encodePayment (payment: Payment): Uint8Array {
  assertPayment(payment)
  return paymentType.encode(paymentToWire(payment)).finish()
}

export function decodePayment (bytes: Uint8Array): Payment {
  const wire = paymentType.decode(bytes) as unknown as Record<string, any>
  assert.equal(wire.schemaVersion, schemaVersion, 'unknown payment schema version')
  return paymentFromWire(wire)
}

export function encodeChangeEvent (event: ChangeEvent): Uint8Array {
  assert.ok(Number.isSafeInteger(event.sequence) && event.sequence >= 1, 'bad event sequence')
  return changeEventType.encode({
    schemaVersion,
    eventId: event.eventId,
    nodeId: event.nodeId,
    sequence: event.sequence,
    type: eventTypes.indexOf(event.type) + 1,
    checkoutId: event.checkoutId,
    version: event.version,
    occurredAtMs: event.occurredAtMs,
    payment: paymentToWire(event.payment),
    previousStatus: event.previousStatus === undefined ? 0 : statusToWire(event.previousStatus),
    actor: event.actor,
    webhook: event.webhook,
  }).finish()
}

export function decodeChangeEvent (bytes: Uint8Array): ChangeEvent {
  const wire = changeEventType.decode(bytes) as unknown as Record<string, any>
  assert.equal(wire.schemaVersion, schemaVersion, 'unknown change event schema version')
  const type = eventTypes[wire.type - 1]
  assert.ok(type !== undefined, `unknown event type on the wire: ${wire.type}`)
  assert.ok(Number.isSafeInteger(wire.sequence) && wire.sequence >= 1, 'bad event sequence')
  return {
    eventId: wire.eventId,
    nodeId: wire.nodeId,
    sequence: wire.sequence,
    type,
    checkoutId: wire.checkoutId,
    version: wire.version,
    occurredAtMs: wire.occurredAtMs,
    payment: paymentFromWire(wire.payment),
    previousStatus: wire.previousStatus === 0 ? undefined : statusFromWire(wire.previousStatus),
    actor: wire.actor,
    webhook: wire.webhook == null
      ? undefined
      : {
          provider: wire.webhook.provider,
          pspEventId: wire.webhook.pspEventId,
          type: wire.webhook.type,
          payloadJson: wire.webhook.payloadJson,
          applied: wire.webhook.applied,
          note: wire.webhook.note,
          receivedAtMs: wire.webhook.receivedAtMs,
        },
  }
}

export function encodeNodeMeta (meta: NodeMeta): Uint8Array {
  return nodeMetaType.encode({ schemaVersion, ...meta }).finish()
}

export function decodeNodeMeta (bytes: Uint8Array): NodeMeta {
  const wire = nodeMetaType.decode(bytes) as unknown as Record<string, any>
  assert.equal(wire.schemaVersion, schemaVersion, 'unknown node meta schema version')
  assert.ok(Number.isSafeInteger(wire.nextSequence) && wire.nextSequence >= 1, 'bad next sequence')
  return { nodeId: wire.nodeId, nextSequence: wire.nextSequence, createdAtMs: wire.createdAtMs }
}
