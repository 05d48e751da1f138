// Handles one consumed batch of change events (one partition, in order):
//   1. decode; an unreadable message is poison and goes to the dead-letter topic;
//   2. project every event into Postgres in one statement (retried until Postgres takes it: the
//      batch is not acknowledged to Kafka before, so nothing is skipped);
//   3. drive every newly created payment to the PSP, different payments in parallel (bounded by
//      the PSP slot semaphore), each payment's steps in order;
//   4. resolve: Kafka commits the offsets. A crash anywhere re-delivers the batch, and every step
//      is idempotent (event-id dedup, version guard, node version check, PSP idempotency key).

import { backoffDelayMs, sleep } from '../lib/backoff.ts'
import type { BatchControl, ConsumedMessage } from '../lib/event-bus.ts'
import type { Logger } from '../lib/log.ts'
import { decodeChangeEvent, terminalStatuses, type ChangeEvent } from '../lib/payment-codec.ts'
import { DeadLetter, drivePayment, type ChargeFlowDeps } from './charge-flow.ts'
import type { DeadLetterPublisher } from './dead-letters.ts'
import { processorLimits } from './limits.ts'
import type { ProcessorMetrics } from './metrics.ts'
import { NodeError, type NodePayment } from './node-client.ts'
import { PspError } from './psp/types.ts'
import { projectEvents, recordWebhooks } from './projection.ts'
import type pg from 'pg'

export interface BatchDeps {
  pool: pg.Pool
  flow: ChargeFlowDeps
  deadLetters: DeadLetterPublisher
  metrics: ProcessorMetrics
  log: Logger
}

const heartbeatIntervalMs = 3_000

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
    ...(p.pspReference ? { psp_reference: p.pspReference } : {}),
  }
}

async function untilWritten (deps: BatchDeps, what: string, write: () => Promise<void>, control: BatchControl): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write()
    } catch (error) {
      if (control.isStale()) throw error
      deps.metrics.projectionRetries.inc()
      deps.log.warn({ err: error, attempt }, `${what} failed; retrying`)
      await sleep(backoffDelayMs({
        baseDelayMs: processorLimits.projectionBackoffBaseDelayMs, delayMsMax: processorLimits.projectionBackoffDelayMsMax,
      }, attempt))
      await control.heartbeat().catch(() => undefined)
    }
  }
}

export async function handleBatch (deps: BatchDeps, messages: readonly ConsumedMessage[], control: BatchControl): Promise<void> {
  const startedAt = performance.now()
  const heartbeat = setInterval(() => { control.heartbeat().catch(() => undefined) }, heartbeatIntervalMs)
  try {
    const events: ChangeEvent[] = []
    const sources = new Map<string, ConsumedMessage>()
    const seen = new Set<string>()
    for (const message of messages) {
      let event: ChangeEvent
      try {
        event = decodeChangeEvent(message.value)
      } catch (error) {
        deps.log.error({ err: error, partition: message.partition, offset: message.offset, key: message.key }, 'poison event')
        deps.metrics.deadLetters.inc({ reason: 'poison' })
        await deps.deadLetters.publish(message, 'poison', (error as Error).message)
        continue
      }
      if (seen.has(event.eventId)) continue
      seen.add(event.eventId)
      events.push(event)
      sources.set(event.eventId, message)
      deps.metrics.eventsConsumed.inc({ type: event.type })
    }

    const projectionStartedAt = performance.now()
    await untilWritten(deps, 'projection', () => projectEvents(deps.pool, events), control)
    await untilWritten(deps, 'webhook record', () => recordWebhooks(deps.pool, events), control)
    deps.metrics.projectionDuration.observe((performance.now() - projectionStartedAt) / 1000)
    for (const event of events) {
      if (event.webhook?.note === 'amount_mismatch') {
        deps.metrics.flagged.inc()
        await untilWritten(deps, 'flag', () => deps.flow.flag(event.checkoutId, `webhook ${event.webhook!.pspEventId} disagrees on amount or currency`), control)
      }
    }
    const nowMs = Date.now()
    for (const event of events) {
      if (event.type === 'payment.status_changed' && terminalStatuses.has(event.payment.status)) {
        deps.metrics.acceptedToTerminal.observe({ status: event.payment.status }, (nowMs - event.payment.createdAtMs) / 1000)
      }
    }

    // One flow per newly created payment; a payment appears at most once per batch here.
    const created = new Map<string, ChangeEvent>()
    for (const event of events) if (event.type === 'payment.created') created.set(event.checkoutId, event)
    await Promise.all([...created.values()].map(async (event) => {
      try {
        await drivePayment(deps.flow, nodePaymentOf(event))
      } catch (error) {
        // Expected failures that retrying this batch would not fix go to the dead-letter topic;
        // anything else is a bug and fails the batch (it is redelivered after the crash).
        const reason = error instanceof DeadLetter
          ? error.reason
          : error instanceof NodeError || error instanceof PspError ? error.code : undefined
        if (reason === undefined) throw error
        deps.log.error({ checkout_id: event.checkoutId, reason, err: error }, 'payment dead-lettered')
        deps.metrics.deadLetters.inc({ reason })
        await deps.deadLetters.publish(sources.get(event.eventId)!, reason, (error as Error).message)
      }
    }))
  } finally {
    clearInterval(heartbeat)
    deps.metrics.batchDuration.observe((performance.now() - startedAt) / 1000)
  }
}
