// Handles consumed change events, pipelined: the consumer hands over each fetched batch at once
// and gets one promise per message, settled when that message is finished; it commits a
// partition's offset only up to its lowest unfinished message (lib/event-bus.ts OffsetTracker).
// So a slow PSP call holds back only its own payment, never its partition or the fetch loop.
//
// Per message:
//   0. check it is genuine (issue #17 part 3, lib/event-signing.ts): its `event-mac` header must be
//      a valid MAC of its bytes under a key of the node it names, and its event id
//      `<node>:<sequence>` with the payment of that node and checkout id; anything else is
//      refused (counted, logged, dead-lettered with the reason) before it can be projected,
//      deduplicated against or acted on. The projection refuses, the same way, a signed event for
//      a payment Postgres records as another node's (projection.ts);
//   1. decode; an unreadable message is poison and goes to the dead-letter topic;
//   2. project it into Postgres (projection-writer.ts: one statement per turn for everything
//      handed over meanwhile, retried until Postgres takes it);
//   3. meanwhile, in event order per checkout id (key-queue.ts), what the event asks for: a
//      `payment.created` drives the payment to the PSP (charge-flow.ts); a cancel of a payment whose
//      charge awaited the customer cancels that charge at the PSP (charge-flow.ts cancelAtPsp); a
//      webhook that disagrees on the amount flags the payment (after the projection: the flag
//      updates its row).
//   A message is finished when both are done; other events once projected.
// A crash anywhere re-delivers every unfinished message, and every step is idempotent (event-id
// dedup, version guard, node version check, PSP idempotency key = checkout id).

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { ConsumedMessage } from '../lib/event-bus.ts'
import { changeEventIdentityMismatch, eventMacHeader, type EventRefusalCode, type EventVerifier } from '../lib/event-signing.ts'
import { readChangeEventHeader } from '../cdc-relay/event-header.ts'
import type { FieldSealer } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import { tracer } from '../lib/tracing.ts'
import { decodeChangeEvent, terminalStatuses, type ChangeEvent } from '../lib/payment-codec.ts'
import { paymentKey, type PaymentId } from '../lib/payment-id.ts'
import { cancelAtPsp, DeadLetter, drivePayment, type ChargeFlowDeps } from './charge-flow.ts'
import { driveCapture } from './capture-flow.ts'
import type { DeadLetterPublisher } from './dead-letters.ts'
import type { KeyedQueue } from './key-queue.ts'
import { processorLimits } from './limits.ts'
import type { ProcessorMetrics } from './metrics.ts'
import { NodeError, type NodePayment } from './node-client.ts'
import { PspError } from './psp/types.ts'
import type { ProjectionWriter } from './projection-writer.ts'
import { driveRefund } from './refund-flow.ts'
import { consumeSpanOf, traceConsumed, withinConsume, type ConsumeSpan } from './traces.ts'

export interface PipelineDeps {
  flow: ChargeFlowDeps
  projection: ProjectionWriter
  /** Per payment (merchant and checkout id: lib/payment-id.ts paymentKey) order of the work that follows projection. */
  keys: KeyedQueue
  deadLetters: Pick<DeadLetterPublisher, 'publish'>
  metrics: ProcessorMetrics
  log: Logger
  /** Opens the events' sealed fields (the charge needs the payment method token). */
  sealer: FieldSealer
  /** Every node's event-signing keys: only events a node signed are projected or acted on. */
  verifier: Pick<EventVerifier, 'verify'>
}

/** The event's payment: its merchant's checkout id. */
function paymentIdOf (event: ChangeEvent): PaymentId {
  return { merchant_id: event.payment.merchantId, checkout_id: event.checkoutId }
}

export function nodePaymentOf (event: ChangeEvent): NodePayment {
  const p = event.payment
  return {
    checkout_id: p.checkoutId,
    merchant_id: p.merchantId,
    status: p.status,
    version: p.version,
    amount: p.amount,
    currency: p.currency,
    payment_method: p.paymentMethod,
    description: p.description,
    node_id: event.nodeId,
    ...(p.pspReference ? { psp_reference: p.pspReference } : {}),
    ...(p.captureMethod === 'manual' ? { capture_method: 'manual', amount_to_capture: p.amountToCapture ?? 0, amount_captured: p.amountCaptured ?? 0 } : {}),
  }
}

/** Retries a Postgres or Kafka write until it goes through: the message stays unfinished meanwhile. */
async function untilDone (deps: PipelineDeps, what: string, checkoutId: string | undefined, write: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write()
    } catch (error) {
      deps.metrics.projectionRetries.inc()
      deps.log.warn({ err: error, attempt, ...(checkoutId !== undefined ? { checkout_id: checkoutId } : {}) }, `${what} failed; retrying`)
      await sleep(backoffDelayMs({
        baseDelayMs: processorLimits.projectionBackoffBaseDelayMs, delayMsMax: processorLimits.projectionBackoffDelayMsMax,
      }, attempt))
    }
  }
}

async function deadLetter (deps: PipelineDeps, message: ConsumedMessage, reason: string, detail: string, checkoutId: string | undefined,
  merchantId?: string): Promise<void> {
  deps.metrics.deadLetters.inc({ reason })
  await untilDone(deps, 'dead-letter publish', checkoutId, () => deps.deadLetters.publish(message, reason, detail, merchantId))
}

async function drive (deps: PipelineDeps, event: ChangeEvent, message: ConsumedMessage, projected: Promise<void>,
  flow: (deps: ChargeFlowDeps, payment: NodePayment) => Promise<unknown> = drivePayment): Promise<void> {
  // The node and the PSP do not need the Postgres row, so driving starts while the event is being
  // projected; only a flag (an UPDATE of that row) must wait for it, or it would find no row.
  const flowDeps: ChargeFlowDeps = {
    ...deps.flow,
    flag: async (payment, reason) => {
      await projected
      await deps.flow.flag(payment, reason)
    },
  }
  try {
    await flow(flowDeps, nodePaymentOf(event))
  } catch (error) {
    // Expected failures that a redelivery would not fix go to the dead-letter topic; anything
    // else is a bug and rejects (the consumer then starts over from the committed offsets).
    const reason = error instanceof DeadLetter
      ? error.reason
      : error instanceof NodeError || error instanceof PspError ? error.code : undefined
    if (reason === undefined) throw error
    deps.log.error({ checkout_id: event.checkoutId, reason, err: error }, 'payment dead-lettered')
    await deadLetter(deps, message, reason, (error as Error).message, event.checkoutId, event.payment.merchantId)
  }
}

/**
 * What an event asks for besides its projection, or undefined when nothing. The message is
 * finished when both the work and the projection are done.
 */
function workOf (deps: PipelineDeps, event: ChangeEvent, message: ConsumedMessage, projected: Promise<void>): (() => Promise<void>) | undefined {
  if (event.type === 'payment.created') return () => drive(deps, event, message, projected)
  if (event.type === 'payment.refund_created') {
    // A merchant's refund: refund at the PSP (refund-flow.ts), outcome back to the node.
    return () => drive(deps, event, message, projected, (flowDeps) => driveRefund(flowDeps, event.payment, event.refundId))
  }
  if (event.type === 'payment.capture_requested') {
    // The merchant's capture of a manual payment: capture at the PSP (capture-flow.ts), then succeeded.
    return () => drive(deps, event, message, projected, driveCapture)
  }
  if (event.type === 'payment.status_changed' && event.payment.status === 'canceled' &&
    (event.previousStatus === 'requires_action' || event.previousStatus === 'requires_capture') &&
    event.payment.pspReference !== '' && !event.actor.startsWith('webhook:')) {
    // Canceled (by the merchant, an operator or the expiry) while its charge awaited the customer
    // at the PSP, or while its authorization awaited the capture: cancel the charge there too (for
    // an authorization, a void). Not when the PSP itself said so (its charge.canceled webhook).
    return () => drive(deps, event, message, projected, cancelAtPsp)
  }
  if (event.webhook?.note === 'amount_mismatch') {
    const reason = `webhook ${event.webhook.pspEventId} disagrees on amount or currency`
    return async () => {
      await projected
      await untilDone(deps, 'flag', event.checkoutId, () => deps.flow.flag(paymentIdOf(event), reason))
    }
  }
  return undefined
}

/** Characters of a refused event's claimed checkout id or event id that are logged (genuine ones are at most 64 and 86). */
const claimedIdLengthMax = 100

/**
 * An event that is not genuine: never projected or acted on; counted, logged (the checkout id it
 * claims, never its payload) and dead-lettered with the reason, so an operator sees it. Never
 * throws for the event itself: a forged event must not stop the consumer.
 */
async function refuse (deps: PipelineDeps, message: ConsumedMessage, code: EventRefusalCode, detail: string, claimed: { checkoutId?: string, eventId?: string }): Promise<void> {
  deps.metrics.eventsRefused.inc({ reason: code })
  // What a forged event claims is the forger's text: bounded, so refused events cannot flood the log.
  const checkoutId = claimed.checkoutId?.slice(0, claimedIdLengthMax)
  deps.log.error({
    reason: code, detail, checkout_id: checkoutId, event_id: claimed.eventId?.slice(0, claimedIdLengthMax),
    partition: message.partition, offset: message.offset,
  }, 'change event refused: not genuine')
  await deadLetter(deps, message, code, detail, checkoutId)
}

/** Why a signed event contradicts itself, or undefined when consistent. */

function observeProjected (deps: PipelineDeps, event: ChangeEvent): void {
  if (event.type === 'payment.status_changed' && terminalStatuses.has(event.payment.status)) {
    deps.metrics.acceptedToTerminal.observe({ status: event.payment.status }, (Date.now() - event.payment.createdAtMs) / 1000)
  }
}

/**
 * Takes the messages of one partition fetched together (in partition order) and returns one
 * promise per message, settled when it is finished. Rejects only on a bug.
 */
export function handleMessages (deps: PipelineDeps, messages: readonly ConsumedMessage[]): Array<Promise<void>> {
  const handedOverAt = performance.now()
  const done: Array<Promise<void>> = new Array(messages.length)
  const decoded: Array<{ index: number, event: ChangeEvent }> = []
  const seen = new Set<string>()
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]!
    let event: ChangeEvent
    try {
      // The MAC first, over the bytes as received: nothing in a forged event is opened or decoded.
      const claimed = readChangeEventHeader(message.value)
      const verdict = deps.verifier.verify(claimed.nodeId, message.value, message.headers[eventMacHeader])
      if (!verdict.ok) {
        done[index] = refuse(deps, message, verdict.code, verdict.detail, { checkoutId: claimed.checkoutId, eventId: claimed.eventId })
        continue
      }
      event = decodeChangeEvent(message.value, deps.sealer)
    } catch (error) {
      // A FieldCryptoError (a key this processor lacks, a tampered value) is dead-lettered like
      // any unreadable event, with its code in the detail: replay it once the key ring is fixed.
      deps.log.error({ err: error, partition: message.partition, offset: message.offset, key: message.key }, 'poison event')
      done[index] = deadLetter(deps, message, 'poison', (error as Error).message, undefined)
      continue
    }
    const mismatch = changeEventIdentityMismatch(event)
    if (mismatch !== undefined) {
      done[index] = refuse(deps, message, 'event_identity_mismatch', mismatch, { checkoutId: event.checkoutId, eventId: event.eventId })
      continue
    }
    deps.metrics.eventsConsumed.inc({ type: event.type })
    decoded.push({ index, event })
  }
  const outcome = deps.projection.submit(decoded.map((d) => d.event))
  const projected = outcome.then(() => {})
  for (const { index, event } of decoded) {
    const message = messages[index]!
    // Issue #18: the event's consume span, and its work run under it (processor/traces.ts).
    const span: ConsumeSpan | undefined = tracer === undefined ? undefined : consumeSpanOf(tracer, event, message)
    // A second copy in the same batch (relay retry) is projected once and has nothing more to do.
    let work = seen.has(event.eventId) ? undefined : workOf(deps, event, message, projected)
    if (span !== undefined && work !== undefined && tracer !== undefined) work = withinConsume(tracer, span, work)
    seen.add(event.eventId)
    const observed = outcome.then(async (refused) => {
      const why = refused.get(event.eventId)
      if (why === undefined) return observeProjected(deps, event)
      await refuse(deps, message, 'event_node_not_owner', why, { checkoutId: event.checkoutId, eventId: event.eventId })
    })
    done[index] = work === undefined
      ? observed
      // Queued now, in delivery order, so a checkout id's work runs in event order.
      : deps.keys.run(paymentKey(event.payment.merchantId, event.checkoutId), async () => {
        await work()
        await observed
      })
    if (span !== undefined && tracer !== undefined) {
      traceConsumed(tracer, span, { event, message, handedOverAt, events: decoded.length, projected, done: done[index] })
    }
  }
  for (const promise of done) {
    promise.then(() => deps.metrics.eventDuration.observe((performance.now() - handedOverAt) / 1000), () => {})
  }
  return done
}
