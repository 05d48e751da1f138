// Relay configuration from the node's environment. The relay is on when KAFKA_BROKERS is set.
//   KAFKA_BROKERS                         comma-separated host:port; unset = no relay
//   RINGPAY_EVENTS_TOPIC                  default payments.events
//   RINGPAY_EVENT_SIGNING_KEY             `<key id>:<base64 key>`: the node's own key; every event
//                                         published carries its MAC (lib/event-signing.ts). Unset:
//                                         events go unsigned, and processors refuse them
//   KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM
//                                         the relay's Kafka login (lib/kafka-event-bus.ts kafkaSaslFromEnv)
//   RINGPAY_RELAY_BACKLOG_EVENTS_MAX      disk budget in unpublished entries (default 1,000,000);
//                                         new payments are admitted again below 90 % of it
//   RINGPAY_RELAY_PUBLISH_BATCH_EVENTS_MAX, RINGPAY_RELAY_PACING_MS, RINGPAY_RELAY_LIGHT_PACING_MS,
//   RINGPAY_RELAY_PROJECTION_LINGER_MS, RINGPAY_RELAY_NICE
//                                         tuning (see limits.ts)

import { eventSignerFromEnv, eventSigningKeyEnv } from '../lib/event-signing.ts'
import { kafkaSaslFromEnv, parseBrokerList, type KafkaSasl } from '../lib/kafka-event-bus.ts'
import { ConfigError } from '../payment-svc/config.ts'
import { assertRelayLimits, defaultRelayLimits, type RelayLimits } from './limits.ts'

export interface RelayConfig {
  brokers: string[]
  sasl: KafkaSasl | undefined
  /** RINGPAY_EVENT_SIGNING_KEY as given (checked here; the worker makes its own signer from it). */
  signingKey: string | undefined
  topic: string
  limits: RelayLimits
}

export const defaultEventsTopic = 'payments.events'
/** Admission resumes when the backlog is below this share of the budget. */
const backlogResumeFraction = 0.9

function integer (env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer within ${min}..${max}, got ${raw}`)
  }
  return value
}

/** The relay's configuration, or undefined when KAFKA_BROKERS is not set. */
export function loadRelayConfig (env: NodeJS.ProcessEnv): RelayConfig | undefined {
  const brokers = parseBrokerList(env.KAFKA_BROKERS)
  if (brokers === undefined) return undefined
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d{1,5}$/.test(broker)) throw new ConfigError(`KAFKA_BROKERS entries must be host:port, got ${broker}`)
  }
  const topic = env.RINGPAY_EVENTS_TOPIC === undefined || env.RINGPAY_EVENTS_TOPIC === '' ? defaultEventsTopic : env.RINGPAY_EVENTS_TOPIC
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) throw new ConfigError(`RINGPAY_EVENTS_TOPIC is not a valid Kafka topic name: ${topic}`)
  const backlogEventsMax = integer(env, 'RINGPAY_RELAY_BACKLOG_EVENTS_MAX', defaultRelayLimits.backlogEventsMax, 10, 1_000_000_000)
  const publishPacingMs = integer(env, 'RINGPAY_RELAY_PACING_MS', defaultRelayLimits.publishPacingMs, 0, 1_000)
  const limits: RelayLimits = {
    ...defaultRelayLimits,
    backlogEventsMax,
    backlogResumeEventsMax: Math.floor(backlogEventsMax * backlogResumeFraction),
    publishBatchEventsMax: integer(env, 'RINGPAY_RELAY_PUBLISH_BATCH_EVENTS_MAX', defaultRelayLimits.publishBatchEventsMax, 1, 100_000),
    publishPacingMs,
    // Light pacing never exceeds the pacing under load (turning pacing off turns both off).
    publishLightPacingMs: integer(env, 'RINGPAY_RELAY_LIGHT_PACING_MS', Math.min(defaultRelayLimits.publishLightPacingMs, publishPacingMs), 0, publishPacingMs),
    publishProjectionOnlyLingerMs: integer(env, 'RINGPAY_RELAY_PROJECTION_LINGER_MS', defaultRelayLimits.publishProjectionOnlyLingerMs, 0, 1_000),
    workerNiceLevel: integer(env, 'RINGPAY_RELAY_NICE', defaultRelayLimits.workerNiceLevel, 0, 19),
  }
  assertRelayLimits(limits)
  let sasl: KafkaSasl | undefined
  let signingKey: string | undefined
  try {
    sasl = kafkaSaslFromEnv(env)
    signingKey = eventSignerFromEnv(env) === undefined ? undefined : env[eventSigningKeyEnv]
  } catch (error) {
    throw new ConfigError((error as Error).message)
  }
  return { brokers, sasl, signingKey, topic, limits }
}
