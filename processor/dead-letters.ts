// The dead-letter topic: events the processor could not finish (retries exhausted, a node down
// for too long) or could not read (poison). Each keeps its original bytes and key, plus headers
// that say why and where it came from, so it can be listed and replayed unchanged.

import type { ConsumedMessage, EventProducer } from '../lib/event-bus.ts'
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
