// Operator tool for the dead-letter topic.
//
//   node processor/dlq-cli.ts list   [--limit 100]
//   node processor/dlq-cli.ts replay (--merchant-id M --checkout-id ID ... | --all) [--limit 1000]
//
// `list` prints one JSON line per dead letter (merchant and checkout id, reason, error, when, where
// from). A payment is its merchant's checkout id (issue #17 part 5): a replay by id names the
// merchant too, and takes only that merchant's letters of those ids (a letter whose event could not
// be read names no merchant: only --all replays it).
// `replay` publishes the original event, byte for byte and with its key, back to the events
// topic; processing is idempotent, so a replay of something already finished changes nothing.
// Env: KAFKA_BROKERS, KAFKA_SASL_USERNAME/PASSWORD/MECHANISM (the stack's `dlq` login: READ the
// DLQ, WRITE the events topic; info file kafkaCredentials.dlq), RINGPAY_EVENTS_TOPIC, RINGPAY_DLQ_TOPIC.

import { parseArgs } from 'node:util'
import { createKafkaProducer, createKafkaTopicReader, kafkaSaslFromEnv, parseBrokerList } from '../lib/kafka-event-bus.ts'
import { createLogger } from '../lib/log.ts'
import { describeDeadLetter, dlqHeaders, replayDeadLetters } from './dead-letters.ts'

const readTimeoutMs = 60_000
const publishTimeoutMs = 30_000

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    limit: { type: 'string', default: '1000' },
    'merchant-id': { type: 'string' },
    'checkout-id': { type: 'string', multiple: true },
    all: { type: 'boolean', default: false },
  },
})
const command = positionals[0]
const limit = Number(values.limit)
if ((command !== 'list' && command !== 'replay') || !Number.isSafeInteger(limit) || limit < 1) {
  console.error('usage: dlq-cli.ts list [--limit N] | replay (--merchant-id M --checkout-id ID ... | --all) [--limit N]')
  process.exit(2)
}
const brokers = parseBrokerList(process.env.KAFKA_BROKERS)
if (brokers === undefined) {
  console.error('KAFKA_BROKERS is required')
  process.exit(2)
}
const eventsTopic = process.env.RINGPAY_EVENTS_TOPIC ?? 'payments.events'
const dlqTopic = process.env.RINGPAY_DLQ_TOPIC ?? 'payments.dlq'
const log = createLogger('dlq-cli')
log.level = 'warn'
const busOptions = { brokers, sasl: kafkaSaslFromEnv(process.env), clientId: 'ringpay-dlq-cli', connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log }

const letters = await createKafkaTopicReader(busOptions).readToEnd(dlqTopic, { messagesMax: limit, timeoutMs: readTimeoutMs })

if (command === 'list') {
  for (const letter of letters) console.log(JSON.stringify(describeDeadLetter(letter)))
  console.error(`${letters.length} dead letter(s) in ${dlqTopic}`)
} else {
  const wanted = new Set(values['checkout-id'] ?? [])
  const merchantId = values['merchant-id']
  if (!values.all && (wanted.size === 0 || merchantId === undefined)) {
    console.error('replay needs --merchant-id M with --checkout-id ID (repeatable), or --all')
    process.exit(2)
  }
  const chosen = letters.filter((l) => values.all ||
    (l.key !== undefined && wanted.has(l.key) && l.headers[dlqHeaders.merchantId] === merchantId))
  const producer = createKafkaProducer(busOptions)
  try {
    await replayDeadLetters(producer, chosen, eventsTopic, dlqTopic, publishTimeoutMs)
  } finally {
    await producer.close()
  }
  console.log(JSON.stringify({ replayed: chosen.length, checkout_ids: chosen.map((l) => l.key), merchant_ids: chosen.map((l) => l.headers[dlqHeaders.merchantId]) }))
}
