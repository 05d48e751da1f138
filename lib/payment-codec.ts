// Protobuf encoding of stored payments, change events and node metadata (schemas in proto/).
// Decoded values are checked right after reading, before anyone trusts them.
//
// Data at rest (issue #17 part 7): a payment's payment method, customer ref and metadata, and a
// webhook's body, are sealed with the caller's FieldSealer (lib/field-crypto.ts) on encode and
// opened on decode. In memory a Payment holds them in clear; in bytes (LevelDB `p/` and `c/`,
// Kafka, the DLQ) never. Each sealed value is bound to its payment (merchant and checkout id) or
// its webhook, so it cannot be moved to another one.

import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import type { FieldSealer } from './field-crypto.ts'
import { varintSize, writeVarint } from './varint.ts'

// int64 fields decode to plain numbers (every value we write is a validated safe integer; the
// decoder asserts that on the way back), so no Long objects leak into the code.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long
protobuf.configure()

/** Schema of NodeMeta and RelayCursor. */
export const schemaVersion = 1
/** Payment schema 2: sensitive fields sealed in `sealed_fields`. Schema 1 (clear) is still read. */
export const paymentSchemaVersion = 2
/** ChangeEvent schema 2: its payment is schema 2 and a webhook body is sealed. Schema 1 still read. */
export const changeEventSchemaVersion = 2
const legacySchemaVersion = 1

/** What a payment's sealed fields are bound to (the GCM additional data). */
export function paymentFieldsContext (merchantId: string, checkoutId: string): string {
  return `payment/${merchantId}/${checkoutId}`
}

/** What a webhook's sealed body is bound to. */
export function webhookPayloadContext (provider: string, pspEventId: string, checkoutId: string): string {
  return `webhook/${provider}/${pspEventId}/${checkoutId}`
}

export const paymentStatuses = ['pending', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled', 'requires_capture'] as const
export type PaymentStatus = typeof paymentStatuses[number]
export const terminalStatuses: ReadonlySet<PaymentStatus> = new Set(['succeeded', 'failed', 'canceled'])

export const eventTypes = ['payment.created', 'payment.status_changed', 'payment.webhook_received',
  'payment.refund_created', 'payment.refund_updated', 'payment.capture_requested'] as const
export type EventType = typeof eventTypes[number]

/** A refund is forward only: pending -> succeeded | failed (issue #14). */
export const refundStatuses = ['pending', 'succeeded', 'failed'] as const
export type RefundStatus = typeof refundStatuses[number]

/** One refund of a payment, held inside the payment record (proto: ringpay.v1.Refund). */
export interface Refund {
  id: string
  /** Integer minor units of the payment's currency. */
  amount: number
  status: RefundStatus
  reason: string
  idempotencyKey: string
  requestHash: Uint8Array
  createdAtMs: number
  updatedAtMs: number
  pspReference: string
  failureCode: string
  failureMessage: string
}

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
  /** Oldest first; [] for a payment never refunded. */
  refunds: Refund[]
  /** While requires_action: the PSP's page where the customer completes the charge; '' or absent otherwise. */
  nextActionUrl?: string
  /** Manual capture (issue #14): absent for the usual automatic payment (nothing stored for it). */
  captureMethod?: CaptureMethod
  /** Manual capture: minor units captured once succeeded (≤ amount); absent or 0 before. */
  amountCaptured?: number
  /** Manual capture: the merchant's capture request (minor units) once made; absent or 0 before. */
  amountToCapture?: number
  /** Issue #16: the PSP the payment is routed to (set by the processor's claim); absent before. */
  pspProvider?: string
}

export const captureMethods = ['automatic', 'manual'] as const
export type CaptureMethod = typeof captureMethods[number]

/** Whether the PSP only authorized the payment and the merchant captures it (capture_method manual). */
export function isManualCapture (payment: Payment): boolean {
  return payment.captureMethod === 'manual'
}

/**
 * What the payment has taken, the bound of its refunds: an automatic payment its whole amount, a
 * manual one what was captured (0 before its capture).
 */
export function capturedAmountOf (payment: Payment): number {
  return payment.captureMethod === 'manual' ? (payment.amountCaptured ?? 0) : payment.amount
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
  /** The refund a payment.refund_* event is about; '' otherwise. */
  refundId: string
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
const webhookReceiptType = root.lookupType('ringpay.v1.WebhookReceipt')
const sealedFieldsType = root.lookupType('ringpay.v1.SealedPaymentFields')

/**
 * The sealed fields of a payment, by its metadata object. Those fields never change after a
 * create, and a transition copies the payment with `{ ...payment }` (same metadata object), so a
 * payment is sealed once, at its create (or its first read), not at every transition. An entry
 * is used only if every input of the seal is still the same (the metadata object itself is never
 * mutated once in a payment).
 */
interface SealedFieldsEntry {
  sealer: FieldSealer
  checkoutId: string
  merchantId: string
  paymentMethod: string
  customerRef: string
  sealed: Uint8Array
}
const sealedByMetadata = new WeakMap<Record<string, string>, SealedFieldsEntry>()

function sealedFieldsOf (payment: Payment, sealer: FieldSealer): Uint8Array {
  const hit = sealedByMetadata.get(payment.metadata)
  if (hit !== undefined && hit.sealer === sealer && hit.checkoutId === payment.checkoutId &&
    hit.merchantId === payment.merchantId && hit.paymentMethod === payment.paymentMethod &&
    hit.customerRef === payment.customerRef) return hit.sealed
  const plain = sealedFieldsType.encode({
    paymentMethod: payment.paymentMethod, customerRef: payment.customerRef, metadata: payment.metadata,
  }).finish()
  const sealed = sealer.seal(plain, paymentFieldsContext(payment.merchantId, payment.checkoutId))
  plain.fill(0)
  remember(payment, sealer, sealed)
  // Its next read (the processor's claim) need not open what was just sealed.
  rememberOpened(paymentFieldsContext(payment.merchantId, payment.checkoutId), sealer, sealed,
    { paymentMethod: payment.paymentMethod, customerRef: payment.customerRef, metadata: payment.metadata })
  return sealed
}

function remember (payment: Payment, sealer: FieldSealer, sealed: Uint8Array): void {
  sealedByMetadata.set(payment.metadata, {
    sealer, checkoutId: payment.checkoutId, merchantId: payment.merchantId,
    paymentMethod: payment.paymentMethod, customerRef: payment.customerRef, sealed,
  })
}

/**
 * Opened sealed fields by context (merchant and checkout id): a payment is read again at each of
 * its transitions, and the processor decodes each of its events; opening costs ~3.5 µs, a hit
 * ~0.1. A hit needs the same sealer and byte-identical sealed bytes, which opened (were
 * authenticated) under this very context before, so they hold the same fields. Two generations
 * of at most openedFieldsCacheEntriesMax / 2 entries each: when the young one is full it becomes
 * the old one and the old one is dropped (no per-entry eviction). The fields are in memory in
 * clear anyway while a payment is being worked on.
 */
export const openedFieldsCacheEntriesMax = 4096
interface SensitiveFields { paymentMethod: string, customerRef: string, metadata: Record<string, string> }
interface OpenedEntry { sealer: FieldSealer, sealed: Uint8Array, fields: SensitiveFields }
let openedYoung = new Map<string, OpenedEntry>()
let openedOld = new Map<string, OpenedEntry>()

function rememberOpened (context: string, sealer: FieldSealer, sealed: Uint8Array, fields: SensitiveFields): void {
  if (openedYoung.size >= openedFieldsCacheEntriesMax / 2) {
    openedOld = openedYoung
    openedYoung = new Map()
  }
  openedYoung.set(context, { sealer, sealed, fields })
}

function openFields (sealed: Uint8Array, sealer: FieldSealer, context: string): SensitiveFields {
  const hit = openedYoung.get(context) ?? openedOld.get(context)
  if (hit !== undefined && hit.sealer === sealer && Buffer.from(hit.sealed.buffer, hit.sealed.byteOffset, hit.sealed.length).equals(sealed)) {
    return hit.fields
  }
  // A value that does not open throws FieldCryptoError (typed); nothing is returned in its place.
  const opened = sealer.open(sealed, context)
  const wire = sealedFieldsType.decode(opened) as unknown as Record<string, any>
  opened.fill(0)
  const fields = { paymentMethod: wire.paymentMethod, customerRef: wire.customerRef, metadata: { ...wire.metadata } }
  rememberOpened(context, sealer, sealed, fields)
  return fields
}
const refundType = root.lookupType('ringpay.v1.Refund')

// Wire enum value = index + 1 (0 is UNSPECIFIED).
const wireByStatus = new Map<string, number>(paymentStatuses.map((status, index) => [status, index + 1]))
function statusToWire (status: PaymentStatus): number {
  const wire = wireByStatus.get(status)
  if (wire === undefined) assert.fail(`unknown payment status: ${status}`)
  return wire
}
function statusFromWire (value: number): PaymentStatus {
  const status = paymentStatuses[value - 1]
  assert.ok(status !== undefined, `unknown payment status on the wire: ${value}`)
  return status
}

function refundToWire (refund: Refund): Record<string, unknown> {
  return {
    id: refund.id,
    amount: refund.amount,
    status: refundStatuses.indexOf(refund.status) + 1,
    reason: refund.reason,
    idempotencyKey: refund.idempotencyKey,
    requestHash: refund.requestHash,
    createdAtMs: refund.createdAtMs,
    updatedAtMs: refund.updatedAtMs,
    pspReference: refund.pspReference,
    failureCode: refund.failureCode,
    failureMessage: refund.failureMessage,
  }
}

function refundFromWire (wire: Record<string, any>): Refund {
  const status = refundStatuses[wire.status - 1]
  assert.ok(status !== undefined, `unknown refund status on the wire: ${wire.status}`)
  return {
    id: wire.id,
    amount: wire.amount,
    status,
    reason: wire.reason,
    idempotencyKey: wire.idempotencyKey,
    requestHash: wire.requestHash,
    createdAtMs: wire.createdAtMs,
    updatedAtMs: wire.updatedAtMs,
    pspReference: wire.pspReference,
    failureCode: wire.failureCode,
    failureMessage: wire.failureMessage,
  }
}

/**
 * The message protobufjs' generic encoder takes (reference for the hand-written encoder, tests).
 * With `sealedFields` it is schema 2 (no clear sensitive fields); without, legacy schema 1.
 */
function paymentToWire (payment: Payment, sealedFields: Uint8Array | undefined): Record<string, unknown> {
  const sealed = sealedFields !== undefined
  return {
    schemaVersion: sealed ? paymentSchemaVersion : legacySchemaVersion,
    checkoutId: payment.checkoutId,
    merchantId: payment.merchantId,
    amount: payment.amount,
    currency: payment.currency,
    paymentMethod: sealed ? '' : payment.paymentMethod,
    description: payment.description,
    customerRef: sealed ? '' : payment.customerRef,
    metadata: sealed ? {} : payment.metadata,
    sealedFields,
    status: statusToWire(payment.status),
    version: payment.version,
    createdAtMs: payment.createdAtMs,
    updatedAtMs: payment.updatedAtMs,
    requestHash: payment.requestHash,
    failureCode: payment.failureCode,
    failureMessage: payment.failureMessage,
    pspReference: payment.pspReference,
    nodeId: payment.nodeId,
    refunds: payment.refunds.map(refundToWire),
    nextActionUrl: payment.nextActionUrl ?? '',
    captureMethod: payment.captureMethod === 'manual' ? 1 : 0,
    amountCaptured: payment.amountCaptured ?? 0,
    amountToCapture: payment.amountToCapture ?? 0,
    pspProvider: payment.pspProvider ?? '',
  }
}

function paymentFromWire (wire: Record<string, any>, sealer: FieldSealer): Payment {
  const sealedFields: Uint8Array | undefined = wire.sealedFields?.length > 0 ? wire.sealedFields : undefined
  const clearFields = wire.paymentMethod !== '' || wire.customerRef !== '' || Object.keys(wire.metadata).length > 0
  let sensitive: SensitiveFields
  if (wire.schemaVersion === paymentSchemaVersion) {
    // Checked before opening: a schema 2 record with clear fields was not written by us.
    if (clearFields) assert.fail(`payment ${wire.checkoutId}: schema ${paymentSchemaVersion} with clear sensitive fields`)
    if (sealedFields === undefined) assert.fail(`payment ${wire.checkoutId}: schema ${paymentSchemaVersion} without sealed fields`)
    sensitive = openFields(sealedFields, sealer, paymentFieldsContext(wire.merchantId, wire.checkoutId))
  } else if (wire.schemaVersion === legacySchemaVersion) {
    // Written before part 7: clear, read as is; the next write of the payment seals it.
    if (sealedFields !== undefined) assert.fail(`payment ${wire.checkoutId}: schema 1 with sealed fields`)
    sensitive = { paymentMethod: wire.paymentMethod, customerRef: wire.customerRef, metadata: { ...wire.metadata } }
  } else {
    assert.fail(`unknown payment schema version: ${wire.schemaVersion}`)
  }
  const payment: Payment = {
    checkoutId: wire.checkoutId,
    merchantId: wire.merchantId,
    amount: wire.amount,
    currency: wire.currency,
    paymentMethod: sensitive.paymentMethod,
    description: wire.description,
    customerRef: sensitive.customerRef,
    metadata: sensitive.metadata,
    status: statusFromWire(wire.status),
    version: wire.version,
    createdAtMs: wire.createdAtMs,
    updatedAtMs: wire.updatedAtMs,
    requestHash: wire.requestHash,
    failureCode: wire.failureCode,
    failureMessage: wire.failureMessage,
    pspReference: wire.pspReference,
    nodeId: wire.nodeId,
    refunds: (wire.refunds ?? []).map(refundFromWire),
  }
  if (wire.nextActionUrl !== undefined && wire.nextActionUrl !== '') payment.nextActionUrl = wire.nextActionUrl
  if (wire.captureMethod === 1) payment.captureMethod = 'manual'
  else if (wire.captureMethod !== 0 && wire.captureMethod !== undefined) assert.fail(`payment ${wire.checkoutId}: unknown capture method ${wire.captureMethod}`)
  if (wire.amountCaptured > 0) payment.amountCaptured = wire.amountCaptured
  if (wire.amountToCapture > 0) payment.amountToCapture = wire.amountToCapture
  if (wire.pspProvider !== undefined && wire.pspProvider !== '') payment.pspProvider = wire.pspProvider
  assertPayment(payment)
  // Its next encode (a transition) reuses these bytes instead of sealing again.
  if (sealedFields !== undefined) remember(payment, sealer, sealedFields)
  return payment
}

/** The checks a payment must pass before it is written and after it is read back. */
export function assertPayment (payment: Payment): void {
  // Messages are built only on failure: this runs for every write and every read.
  if (payment.checkoutId.length === 0) assert.fail('payment without checkout id')
  if (!(Number.isSafeInteger(payment.amount) && payment.amount > 0)) assert.fail(`payment ${payment.checkoutId}: bad amount`)
  if (!currencyPattern.test(payment.currency)) assert.fail(`payment ${payment.checkoutId}: bad currency`)
  if (!(Number.isSafeInteger(payment.version) && payment.version >= 1)) assert.fail(`payment ${payment.checkoutId}: bad version`)
  if (payment.requestHash.length !== 32) assert.fail(`payment ${payment.checkoutId}: bad request hash`)
  if (payment.captureMethod !== undefined && payment.captureMethod !== 'automatic') assertCapture(payment)
  if (payment.refunds.length > 0) assertRefunds(payment)
}

/** Manual capture: what is captured or asked for never exceeds what was authorized (the amount). */
function assertCapture (payment: Payment): void {
  if (payment.captureMethod !== 'manual') assert.fail(`payment ${payment.checkoutId}: unknown capture method`)
  const captured = payment.amountCaptured ?? 0
  const toCapture = payment.amountToCapture ?? 0
  if (!(Number.isSafeInteger(captured) && captured >= 0 && captured <= payment.amount)) assert.fail(`payment ${payment.checkoutId}: captured more than authorized`)
  if (!(Number.isSafeInteger(toCapture) && toCapture >= 0 && toCapture <= payment.amount)) assert.fail(`payment ${payment.checkoutId}: capture request beyond the authorized amount`)
  if (captured > 0 && payment.status !== 'succeeded') assert.fail(`payment ${payment.checkoutId}: captured but ${payment.status}`)
}

/** Refunds: positive safe amounts whose pending and succeeded ones together never exceed what was captured. */
function assertRefunds (payment: Payment): void {
  let committed = 0
  for (const refund of payment.refunds) {
    if (refund.id.length === 0) assert.fail(`payment ${payment.checkoutId}: refund without id`)
    if (!(Number.isSafeInteger(refund.amount) && refund.amount > 0)) assert.fail(`payment ${payment.checkoutId}: bad refund amount`)
    if (refund.status !== 'failed') committed += refund.amount
  }
  if (committed > capturedAmountOf(payment)) assert.fail(`payment ${payment.checkoutId}: refunds exceed the captured amount`)
}

const currencyPattern = /^[A-Z]{3}$/

/**
 * `ringpay.v1.Payment` bytes. Written by hand (one exact-size buffer, no writer operations or
 * Long objects per field), byte for byte what protobufjs' encoder produces for the same message
 * (pinned by lib/test/payment-codec.test.ts): fields in number order, proto3 defaults omitted,
 * map entries with both key and value.
 */
export function encodePayment (payment: Payment, sealer: FieldSealer): Uint8Array {
  assertPayment(payment)
  const sealed = sealedFieldsOf(payment, sealer)
  // Refunds are rare and few per payment: protobufjs' generic encoder is fine for them.
  const refunds = payment.refunds.length === 0 ? noRefundBytes : payment.refunds.map((refund) => refundType.encode(refundToWire(refund)).finish())
  const size = paymentSize(payment, sealed, refunds)
  const out = Buffer.allocUnsafe(size)
  if (writePayment(out, 0, payment, sealed, refunds) !== size) assert.fail('payment encoder size mismatch')
  return out
}

const noRefundBytes: readonly Uint8Array[] = []

export function decodePayment (bytes: Uint8Array, sealer: FieldSealer): Payment {
  const wire = paymentType.decode(bytes) as unknown as Record<string, any>
  return paymentFromWire(wire, sealer)
}

/**
 * `ringpay.v1.ChangeEvent` bytes. `paymentBytes`, when given, must be `encodePayment(event.payment)`
 * (the store encodes the payment once for `p/` and embeds the same bytes here). Byte for byte
 * what protobufjs produces for the same event.
 */
export function encodeChangeEvent (event: ChangeEvent, sealer: FieldSealer, paymentBytes: Uint8Array = encodePayment(event.payment, sealer)): Uint8Array {
  if (!(Number.isSafeInteger(event.sequence) && event.sequence >= 1)) assert.fail('bad event sequence')
  const type = eventTypes.indexOf(event.type) + 1
  assert.ok(type > 0, 'unknown event type')
  const previousStatus = event.previousStatus === undefined ? 0 : statusToWire(event.previousStatus)
  const webhookBytes = event.webhook === undefined
    ? undefined
    : webhookReceiptType.encode(webhookToWire(event.webhook, sealWebhookPayload(event.webhook, event.checkoutId, sealer))).finish()
  const size = 2 + // schema_version
    stringFieldSize(event.eventId) + stringFieldSize(event.nodeId) + varintFieldSize(event.sequence) +
    varintFieldSize(type) + stringFieldSize(event.checkoutId) + varintFieldSize(event.version) +
    varintFieldSize(event.occurredAtMs) + 1 + varintSize(paymentBytes.length) + paymentBytes.length +
    varintFieldSize(previousStatus) + stringFieldSize(event.actor) +
    (webhookBytes === undefined ? 0 : 1 + varintSize(webhookBytes.length) + webhookBytes.length) +
    stringFieldSize(event.refundId)
  const out = Buffer.allocUnsafe(size)
  let at = 0
  out[at++] = 8
  out[at++] = changeEventSchemaVersion
  at = writeStringField(out, at, 18, event.eventId)
  at = writeStringField(out, at, 26, event.nodeId)
  at = writeVarintField(out, at, 32, event.sequence)
  at = writeVarintField(out, at, 40, type)
  at = writeStringField(out, at, 50, event.checkoutId)
  at = writeVarintField(out, at, 56, event.version)
  at = writeVarintField(out, at, 64, event.occurredAtMs)
  at = writeBytesField(out, at, 74, paymentBytes)
  at = writeVarintField(out, at, 80, previousStatus)
  at = writeStringField(out, at, 90, event.actor)
  if (webhookBytes !== undefined) at = writeBytesField(out, at, 98, webhookBytes)
  at = writeStringField(out, at, 106, event.refundId)
  if (at !== size) assert.fail('change event encoder size mismatch')
  return out
}

// --- The hand-written encoder's parts. Tags below 128 are one byte; field 16+ needs two. ---

function sealWebhookPayload (webhook: WebhookReceipt, checkoutId: string, sealer: FieldSealer): Uint8Array {
  return sealer.seal(Buffer.from(webhook.payloadJson, 'utf8'), webhookPayloadContext(webhook.provider, webhook.pspEventId, checkoutId))
}

function webhookToWire (webhook: WebhookReceipt, payloadSealed: Uint8Array): Record<string, unknown> {
  return {
    provider: webhook.provider,
    pspEventId: webhook.pspEventId,
    type: webhook.type,
    payloadJson: '',
    applied: webhook.applied,
    note: webhook.note,
    receivedAtMs: webhook.receivedAtMs,
    payloadSealed,
  }
}

// Schema 2 writes no clear payment_method (6), customer_ref (8) or metadata (9); sealed_fields
// (19) comes last, after node_id (18).
function paymentSize (payment: Payment, sealed: Uint8Array, refunds: readonly Uint8Array[]): number {
  let size = 2 + // schema_version
    stringFieldSize(payment.checkoutId) + stringFieldSize(payment.merchantId) + varintFieldSize(payment.amount) +
    stringFieldSize(payment.currency) + stringFieldSize(payment.description) +
    varintFieldSize(statusToWire(payment.status)) +
    varintFieldSize(payment.version) + varintFieldSize(payment.createdAtMs) + varintFieldSize(payment.updatedAtMs) +
    (payment.requestHash.length === 0 ? 0 : 1 + varintSize(payment.requestHash.length) + payment.requestHash.length) +
    stringFieldSize(payment.failureCode) +
    (payment.failureMessage === '' ? 0 : 1 + stringFieldSize(payment.failureMessage)) +
    (payment.pspReference === '' ? 0 : 1 + stringFieldSize(payment.pspReference)) +
    (payment.nodeId === '' ? 0 : 1 + stringFieldSize(payment.nodeId)) +
    2 + varintSize(sealed.length) + sealed.length
  for (const refund of refunds) size += 2 + varintSize(refund.length) + refund.length
  if (payment.nextActionUrl !== undefined && payment.nextActionUrl !== '') size += 1 + stringFieldSize(payment.nextActionUrl)
  // Fields 22..24 (manual capture): two-byte tags; nothing for an automatic payment.
  if (payment.captureMethod === 'manual') size += 3
  if (payment.amountCaptured !== undefined && payment.amountCaptured !== 0) size += 2 + varintSize(payment.amountCaptured)
  if (payment.amountToCapture !== undefined && payment.amountToCapture !== 0) size += 2 + varintSize(payment.amountToCapture)
  if (payment.pspProvider !== undefined && payment.pspProvider !== '') size += 1 + stringFieldSize(payment.pspProvider)
  return size
}

function writePayment (out: Buffer, start: number, payment: Payment, sealed: Uint8Array, refunds: readonly Uint8Array[]): number {
  let at = start
  out[at++] = 8
  out[at++] = paymentSchemaVersion
  at = writeStringField(out, at, 18, payment.checkoutId)
  at = writeStringField(out, at, 26, payment.merchantId)
  at = writeVarintField(out, at, 32, payment.amount)
  at = writeStringField(out, at, 42, payment.currency)
  at = writeStringField(out, at, 58, payment.description)
  at = writeVarintField(out, at, 80, statusToWire(payment.status))
  at = writeVarintField(out, at, 88, payment.version)
  at = writeVarintField(out, at, 96, payment.createdAtMs)
  at = writeVarintField(out, at, 104, payment.updatedAtMs)
  if (payment.requestHash.length > 0) at = writeBytesField(out, at, 114, payment.requestHash)
  at = writeStringField(out, at, 122, payment.failureCode)
  // Fields 16..18: two-byte tags (field << 3 | 2 as a varint).
  if (payment.failureMessage !== '') { out[at++] = 130; out[at++] = 1; at = writeString(out, at, payment.failureMessage) }
  if (payment.pspReference !== '') { out[at++] = 138; out[at++] = 1; at = writeString(out, at, payment.pspReference) }
  if (payment.nodeId !== '') { out[at++] = 146; out[at++] = 1; at = writeString(out, at, payment.nodeId) }
  // Field 19, bytes: tag 19 << 3 | 2 = 154, a two-byte varint.
  out[at++] = 154
  out[at++] = 1
  at = writeVarint(out, at, sealed.length)
  out.set(sealed, at)
  at += sealed.length
  // Field 20, repeated message: one length-delimited entry per refund, in order.
  for (const refund of refunds) {
    out[at++] = 162
    out[at++] = 1
    at = writeVarint(out, at, refund.length)
    out.set(refund, at)
    at += refund.length
  }
  // Field 21, string: tag 21 << 3 | 2 = 170, a two-byte varint.
  if (payment.nextActionUrl !== undefined && payment.nextActionUrl !== '') { out[at++] = 170; out[at++] = 1; at = writeString(out, at, payment.nextActionUrl) }
  // Field 22, enum (22 << 3 | 0 = 176), 23 and 24, int64 (184, 192): two-byte tags, varint values.
  if (payment.captureMethod === 'manual') { out[at++] = 176; out[at++] = 1; out[at++] = 1 }
  if (payment.amountCaptured !== undefined && payment.amountCaptured !== 0) { out[at++] = 184; out[at++] = 1; at = writeVarint(out, at, payment.amountCaptured) }
  if (payment.amountToCapture !== undefined && payment.amountToCapture !== 0) { out[at++] = 192; out[at++] = 1; at = writeVarint(out, at, payment.amountToCapture) }
  // Field 25, string (issue #16): tag 25 << 3 | 2 = 202, a two-byte varint.
  if (payment.pspProvider !== undefined && payment.pspProvider !== '') { out[at++] = 202; out[at++] = 1; at = writeString(out, at, payment.pspProvider) }
  return at
}

/** Tag + varint; 0 when the value is the proto3 default (omitted). */
function varintFieldSize (value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value)
}

function writeVarintField (out: Buffer, at: number, tag: number, value: number): number {
  if (value === 0) return at
  out[at++] = tag
  return writeVarint(out, at, value)
}

/** Tag + length + UTF-8; 0 for '' (omitted). */
function stringFieldSize (value: string): number {
  if (value === '') return 0
  const bytes = utf8Length(value)
  return 1 + varintSize(bytes) + bytes
}

function writeStringField (out: Buffer, at: number, tag: number, value: string): number {
  if (value === '') return at
  out[at++] = tag
  return writeString(out, at, value)
}

function writeBytesField (out: Buffer, at: number, tag: number, value: Uint8Array): number {
  out[at++] = tag
  at = writeVarint(out, at, value.length)
  out.set(value, at)
  return at + value.length
}

/** Length-prefixed UTF-8. Short ASCII in JS (a native call costs more than the loop). */
function writeString (out: Buffer, at: number, value: string): number {
  const length = value.length
  if (length < 64) {
    let ascii = true
    for (let i = 0; i < length; i++) {
      if (value.charCodeAt(i) > 127) {
        ascii = false
        break
      }
    }
    if (ascii) {
      out[at++] = length // < 128: a one-byte varint
      for (let i = 0; i < length; i++) out[at++] = value.charCodeAt(i)
      return at
    }
  }
  const bytes = Buffer.byteLength(value, 'utf8')
  at = writeVarint(out, at, bytes)
  const written = out.write(value, at, bytes, 'utf8')
  if (written !== bytes) assert.fail('utf8 length mismatch')
  return at + bytes
}

function utf8Length (value: string): number {
  const length = value.length
  if (length < 64) {
    for (let i = 0; i < length; i++) {
      if (value.charCodeAt(i) > 127) return Buffer.byteLength(value, 'utf8')
    }
    return length
  }
  return Buffer.byteLength(value, 'utf8')
}

/**
 * protobufjs' generic encoders for the same messages: the reference the hand-written encoders
 * must match byte for byte (lib/test/payment-codec.test.ts), given the same sealed bytes (a
 * seal is random). Not used on the write path. `legacyPayment`: a schema 1 record (clear), as
 * written before part 7.
 */
export const referenceEncoders = {
  payment: (payment: Payment, sealedFields: Uint8Array): Uint8Array => paymentType.encode(paymentToWire(payment, sealedFields)).finish(),
  legacyPayment: (payment: Payment): Uint8Array => paymentType.encode(paymentToWire(payment, undefined)).finish(),
  changeEvent: (event: ChangeEvent, sealedFields: Uint8Array, payloadSealed: Uint8Array | undefined): Uint8Array => changeEventType.encode({
    schemaVersion: changeEventSchemaVersion,
    eventId: event.eventId,
    nodeId: event.nodeId,
    sequence: event.sequence,
    type: eventTypes.indexOf(event.type) + 1,
    checkoutId: event.checkoutId,
    version: event.version,
    occurredAtMs: event.occurredAtMs,
    payment: paymentToWire(event.payment, sealedFields),
    previousStatus: event.previousStatus === undefined ? 0 : statusToWire(event.previousStatus),
    actor: event.actor,
    webhook: event.webhook === undefined ? undefined : webhookToWire(event.webhook, payloadSealed!),
    refundId: event.refundId,
  }).finish(),
}

/** The sealed parts of encoded bytes, as stored (for tests and tools: nothing is opened). */
export function sealedPartsOf (eventOrPaymentBytes: Uint8Array, kind: 'payment' | 'changeEvent'): { sealedFields: Uint8Array, payloadSealed: Uint8Array | undefined } {
  if (kind === 'payment') {
    const wire = paymentType.decode(eventOrPaymentBytes) as unknown as Record<string, any>
    return { sealedFields: wire.sealedFields, payloadSealed: undefined }
  }
  const wire = changeEventType.decode(eventOrPaymentBytes) as unknown as Record<string, any>
  return { sealedFields: wire.payment.sealedFields, payloadSealed: wire.webhook?.payloadSealed }
}

export function decodeChangeEvent (bytes: Uint8Array, sealer: FieldSealer): ChangeEvent {
  const wire = changeEventType.decode(bytes) as unknown as Record<string, any>
  const version = wire.schemaVersion
  if (version !== changeEventSchemaVersion && version !== legacySchemaVersion) assert.fail(`unknown change event schema version: ${version}`)
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
    payment: paymentFromWire(wire.payment, sealer),
    previousStatus: wire.previousStatus === 0 ? undefined : statusFromWire(wire.previousStatus),
    actor: wire.actor,
    webhook: wire.webhook == null
      ? undefined
      : {
          provider: wire.webhook.provider,
          pspEventId: wire.webhook.pspEventId,
          type: wire.webhook.type,
          payloadJson: webhookPayloadFromWire(wire.webhook, wire.checkoutId, version, sealer),
          applied: wire.webhook.applied,
          note: wire.webhook.note,
          receivedAtMs: wire.webhook.receivedAtMs,
        },
    refundId: wire.refundId,
  }
}

function webhookPayloadFromWire (webhook: Record<string, any>, checkoutId: string, version: number, sealer: FieldSealer): string {
  const sealed: Uint8Array | undefined = webhook.payloadSealed?.length > 0 ? webhook.payloadSealed : undefined
  if (version === legacySchemaVersion) {
    if (sealed !== undefined) assert.fail('schema 1 change event with a sealed webhook body')
    return webhook.payloadJson
  }
  if (webhook.payloadJson !== '') assert.fail(`schema ${changeEventSchemaVersion} change event with a clear webhook body`)
  if (sealed === undefined) assert.fail(`schema ${changeEventSchemaVersion} change event without a sealed webhook body`)
  return sealer.open(sealed, webhookPayloadContext(webhook.provider, webhook.pspEventId, checkoutId)).toString('utf8')
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
