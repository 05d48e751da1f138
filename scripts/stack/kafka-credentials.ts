// The stack's Kafka principals and their passwords (issue #17 part 3).
//
// One principal per service, each with only the ACLs it needs (kafkaAcls below):
//   admin       super user: the stack runner (topics, ACLs, health), tests and tools
//   relay       every node's CDC relay: WRITE payments.events, nothing else (it cannot read it)
//   processor   READ payments.events, its consumer group(s), WRITE payments.dlq
//   dlq         the DLQ CLI (processor/dlq-cli.ts): READ payments.dlq with its throwaway reader
//               groups, WRITE payments.events (replay)
//   notifier    merchant webhooks (notifier/): READ payments.events and its consumer group(s)
// plus `controller`, the broker's own login on its controller listener (SASL PLAIN: KRaft reads
// SCRAM credentials from its metadata log, so its controller listener cannot use them).
//
// The SCRAM users are added when the broker's storage is formatted (`--add-scram`): kafkajs has no
// AlterUserScramCredentials, and formatting is the one moment no client can be connected. So the
// passwords are made once per stack dir with the format, kept in `<dir>/secrets/kafka-users.json`
// (0600, owned by the service user like the field keys) and reused at every start.

import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { KafkaSasl, KafkaSaslMechanism } from '../../lib/kafka-event-bus.ts';
import type { ServiceUser } from './service-user.ts';

export const kafkaUsersFileName = 'kafka-users.json';
/** Kafka's SCRAM mechanism name for the broker; kafkajs spells it in lower case. */
export const kafkaScramMechanism: KafkaSaslMechanism = 'scram-sha-512';
export const kafkaScramBrokerMechanism = 'SCRAM-SHA-512';
/** SCRAM iterations of the verifiers the broker stores (Kafka's minimum is 4096). */
export const kafkaScramIterations = 8192;

export const kafkaPrincipals = ['admin', 'relay', 'processor', 'dlq', 'notifier'] as const;
export type KafkaPrincipal = (typeof kafkaPrincipals)[number];

export interface KafkaUsersFile {
  mechanism: KafkaSaslMechanism;
  /** The broker's login on its controller listener (PLAIN, static). */
  controllerPassword: string;
  passwords: Record<KafkaPrincipal, string>;
}

export type KafkaCredentials = Record<KafkaPrincipal, KafkaSasl>;

export class KafkaUsersFileError extends Error {
  readonly code = 'kafka_users_file_invalid';
  constructor(message: string) {
    super(message);
    this.name = 'KafkaUsersFileError';
  }
}

/** 32 random bytes, base64url: no character that needs quoting in a JAAS line or a format argument. */
function newKafkaPassword(): string {
  return randomBytes(32).toString('base64url');
}

export function newKafkaUsers(): KafkaUsersFile {
  return {
    mechanism: kafkaScramMechanism,
    controllerPassword: newKafkaPassword(),
    passwords: Object.fromEntries(kafkaPrincipals.map((p) => [p, newKafkaPassword()])) as Record<KafkaPrincipal, string>,
  };
}

export function readKafkaUsersFile(path: string): KafkaUsersFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new KafkaUsersFileError(`${path} is not readable JSON: ${(err as Error).message}`);
  }
  const file = parsed as Partial<KafkaUsersFile>;
  const valid = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_-]{16,}$/.test(v);
  if (file.mechanism !== kafkaScramMechanism || !valid(file.controllerPassword) || typeof file.passwords !== 'object' || file.passwords === null ||
    !kafkaPrincipals.every((p) => valid((file.passwords as Record<string, unknown>)[p]))) {
    throw new KafkaUsersFileError(`${path} does not hold the stack's Kafka users (${kafkaPrincipals.join(', ')})`);
  }
  return file as KafkaUsersFile;
}

/** Atomically, 0600, owned by `owner` (the broker formats with it, the runner reads it). */
export function writeKafkaUsersFile(path: string, file: KafkaUsersFile, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): void {
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  if (owner) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
}

/** The users file at `path`, made with fresh passwords if missing. */
export function ensureKafkaUsersFile(path: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): KafkaUsersFile {
  if (!existsSync(path)) writeKafkaUsersFile(path, newKafkaUsers(), owner);
  else if (owner) chownSync(path, owner.uid, owner.gid);
  return readKafkaUsersFile(path);
}

/** Each principal's login; with `caFile`, over TLS verified against that CA. */
export function kafkaCredentialsOf(file: KafkaUsersFile, caFile?: string): KafkaCredentials {
  return Object.fromEntries(kafkaPrincipals.map((p) => [p, { mechanism: file.mechanism, username: p, password: file.passwords[p], ...(caFile === undefined ? {} : { caFile }) }])) as KafkaCredentials;
}

/** Consumer groups the processors may use: a prefix, so PROCESSOR_GROUP_ID may vary per stack or test. */
export const processorGroupPrefix = 'ringpay-processor';
/** Consumer groups the notifier may use (NOTIFIER_GROUP_ID, default `ringpay-notifier`). */
export const notifierGroupPrefix = 'ringpay-notifier';
/** The throwaway groups of lib/kafka-event-bus.ts createKafkaTopicReader (`ringpay-reader-<pid>-<ms>`). */
export const readerGroupPrefix = 'ringpay-reader-';

export type AclOperation = 'READ' | 'WRITE';
export interface AclSpec {
  principal: KafkaPrincipal;
  resource: 'TOPIC' | 'GROUP';
  name: string;
  pattern: 'LITERAL' | 'PREFIXED';
  operation: AclOperation;
}

/**
 * Every ALLOW the stack grants; anything else is denied (`allow.everyone.if.no.acl.found=false`).
 * READ and WRITE each imply DESCRIBE, which metadata and offset lookups need.
 * No IDEMPOTENT_WRITE: the producers are not idempotent (lib/kafka-event-bus.ts says why).
 */
export function kafkaAcls(topics: { events: string; dlq: string }): AclSpec[] {
  return [
    { principal: 'relay', resource: 'TOPIC', name: topics.events, pattern: 'LITERAL', operation: 'WRITE' },
    { principal: 'processor', resource: 'TOPIC', name: topics.events, pattern: 'LITERAL', operation: 'READ' },
    { principal: 'processor', resource: 'GROUP', name: processorGroupPrefix, pattern: 'PREFIXED', operation: 'READ' },
    { principal: 'processor', resource: 'TOPIC', name: topics.dlq, pattern: 'LITERAL', operation: 'WRITE' },
    { principal: 'dlq', resource: 'TOPIC', name: topics.dlq, pattern: 'LITERAL', operation: 'READ' },
    { principal: 'dlq', resource: 'GROUP', name: readerGroupPrefix, pattern: 'PREFIXED', operation: 'READ' },
    { principal: 'dlq', resource: 'TOPIC', name: topics.events, pattern: 'LITERAL', operation: 'WRITE' },
    { principal: 'notifier', resource: 'TOPIC', name: topics.events, pattern: 'LITERAL', operation: 'READ' },
    { principal: 'notifier', resource: 'GROUP', name: notifierGroupPrefix, pattern: 'PREFIXED', operation: 'READ' },
  ];
}
