// The dead-letter topic: events the processor could not finish (retries exhausted, a node down
// for too long) or could not read (poison). Each keeps its original bytes and key, plus headers
// that say why and where it came from, so it can be listed and replayed unchanged.

import type { ConsumedMessage, EventProducer } from '../lib/event-bus.ts'
import { readChangeEventHeader } from '../cdc-relay/event-header.ts'
import { processorLimits } from './limits.ts'

export const dlqHeaders = {
  reason: 'dlq-reason',
  error: 'dlq-error',
  failedAt: 'dlq-failed-at',
  sourceTopic: 'dlq-source-topic',
  sourcePartition: 'dlq-source-partition',
  sourceOffset: 'dlq-source-offset',
  /** The payment's merchant, when the event could be read (checkout ids are per merchant; the key is the checkout id alone). */
  merchantId: 'dlq-merchant-id',
} as const

export class DeadLetterPublisher {
  readonly #producer: EventProducer
  readonly #topic: string

  constructor (producer: EventProducer, topic: string) {
    this.#producer = producer
    this.#topic = topic
  }

  /** Throws if Kafka does not take it: the source batch is then redelivered, nothing is lost. */
  async publish (message: ConsumedMessage, reason: string, error: string, merchantId?: string): Promise<void> {
    await this.#producer.publish(this.#topic, [{
      key: message.key ?? '',
      value: message.value,
      headers: {
        ...message.headers,
        [dlqHeaders.reason]: reason,
        [dlqHeaders.error]: error.slice(0, 1000),
        [dlqHeaders.failedAt]: new Date().toISOString(),
        [dlqHeaders.sourceTopic]: message.topic,
        [dlqHeaders.sourcePartition]: String(message.partition),
        [dlqHeaders.sourceOffset]: message.offset,
        ...(merchantId !== undefined ? { [dlqHeaders.merchantId]: merchantId } : {}),
      },
    }], { timeoutMs: processorLimits.dlqPublishTimeoutMs })
  }
}

/** What an operator sees of a dead letter (dlq-cli's `list` line, the console's row). */
export interface DeadLetterView {
  /** The payment's merchant (a payment is its merchant and checkout id, #17 part 5). */
  merchant_id: string | undefined
  checkout_id: string | undefined
  event_id: string | undefined
  reason: string | undefined
  error: string | undefined
  failed_at: string | undefined
  source: string
  /** `<partition>@<offset>` in the DLQ: names one letter for a replay. */
  dlq_offset: string
}

export function describeDeadLetter (letter: ConsumedMessage): DeadLetterView {
  let eventId: string | undefined
  try {
    // The header only: listing needs no key to open the payment's sealed fields.
    eventId = readChangeEventHeader(letter.value).eventId
  } catch {
    eventId = undefined
  }
  return {
    merchant_id: letter.headers[dlqHeaders.merchantId],
    checkout_id: letter.key,
    event_id: eventId,
    reason: letter.headers[dlqHeaders.reason],
    error: letter.headers[dlqHeaders.error],
    failed_at: letter.headers[dlqHeaders.failedAt],
    source: `${letter.headers[dlqHeaders.sourceTopic]}/${letter.headers[dlqHeaders.sourcePartition]}@${letter.headers[dlqHeaders.sourceOffset]}`,
    dlq_offset: `${letter.partition}@${letter.offset}`,
  }
}

/**
 * Publishes dead letters back to the events topic: the original bytes and key, the dlq-* headers
 * dropped, `replayed-from` added. Processing is idempotent, so replaying something already
 * finished changes nothing.
 */
export async function replayDeadLetters (producer: EventProducer, letters: readonly ConsumedMessage[], eventsTopic: string, dlqTopic: string, timeoutMs: number): Promise<void> {
  if (letters.length === 0) return
  await producer.publish(eventsTopic, letters.map((l) => {
    const headers = Object.fromEntries(Object.entries(l.headers).filter(([name]) => !name.startsWith('dlq-')))
    return { key: l.key ?? '', value: l.value, headers: { ...headers, 'replayed-from': `${dlqTopic}/${l.partition}@${l.offset}` } }
  }), { timeoutMs })
}
