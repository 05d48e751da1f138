// Local single-node Kafka (KRaft: one process is broker + controller) for the stack, plus
// idempotent topic creation usable against any cluster.
//
// Jars come from .cache/kafka-<version>/libs (scripts/ensure-deps.sh resolves them with Maven).
// The storage dir is formatted once (when meta.properties is missing), so the broker can be
// stopped and started again on the same data dir and ports (the tests do this for outages).
// When KAFKA_BROKERS is set no broker is started; topics are still created there (with the
// KAFKA_SASL_* credentials of the environment, if any; no users or ACLs are made there).
//
// Authentication and authorisation (issue #17 part 3, SECURITY.md): clients reach the broker only
// on its SASL_PLAINTEXT listener with SCRAM-SHA-512 (loopback); the StandardAuthorizer denies
// whatever no ACL allows, `admin` is the one super user (besides the broker's own controller
// login), and each service's principal gets only its ACLs (kafka-credentials.ts kafkaAcls).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs, { Kafka, logLevel, type Admin } from 'kafkajs';
import { kafkaSaslConfig, kafkaSaslFromEnv, type KafkaSasl } from '../../lib/kafka-event-bus.ts';
import { kafkaAcls, kafkaCredentialsOf, kafkaScramBrokerMechanism, kafkaScramIterations, type AclSpec, type KafkaCredentials, type KafkaUsersFile } from './kafka-credentials.ts';
import { ManagedProcess, runCommand, type ServiceHandle, type ServiceStatus } from './proc.ts';
import { chownTree, type ServiceUser } from './service-user.ts';
import { findExecutable, PermanentError, pollUntil, repoRoot, say, errorMessage, withTimeout } from './util.ts';

import '../../lib/kafkajs-request-queue-fix.ts';

export const kafkaVersion = '3.9.1';
export const kafkaLibsDir = join(repoRoot, '.cache', `kafka-${kafkaVersion}`, 'libs');
export const kafkaLibsMarker = join(repoRoot, '.cache', `kafka-${kafkaVersion}`, '.complete');

export const kafkaHeapMb = 512;
export const kafkaReadyTimeoutMs = 90_000;
export const kafkaPollIntervalMs = 250;
/** Broker controlled shutdown normally takes a few seconds. */
export const kafkaStopTimeoutMs = 30_000;
export const kafkaFormatTimeoutMs = 60_000;
export const kafkaConnectionTimeoutMs = 1_000;
export const kafkaRequestTimeoutMs = 10_000;
/** Whole createTopics operation (KRaft may refuse until the broker is unfenced). */
export const topicCreateTimeoutMs = 60_000;
export const topicCreatePollIntervalMs = 500;
export const adminOperationTimeoutMs = 30_000;
/** From the ACLs' creation to the broker's authorizer holding them (usually well under a second). */
export const aclsInForceTimeoutMs = 30_000;

export const eventsTopic = 'payments.events';
export const dlqTopic = 'payments.dlq';
export const defaultEventsPartitions = 64;
export const defaultDlqPartitions = 8;

export interface TopicSpec {
  name: string;
  partitions: number;
  /** -1 = the cluster's default.replication.factor. */
  replicationFactor: number;
  config?: Record<string, string>;
}

/** Where a Kafka client connects, and as whom (undefined: unauthenticated). */
export interface KafkaEndpoint {
  brokers: readonly string[];
  sasl?: KafkaSasl | undefined;
}

export interface KafkaOptions {
  /** Directory owned by this component (config, data, logs). */
  dir: string;
  brokerPort: number;
  controllerPort: number;
  /** The JVM's stdout/stderr. Kafka's own log4j output goes to `<dir>/logs/server.log`. */
  logFile: string;
  topics: TopicSpec[];
  heapMb?: number;
  /** Run the broker (and its storage format) as this user; its dir is given to it. */
  user?: ServiceUser | null;
  /**
   * The stack's principals and passwords (kafka-credentials.ts): SCRAM users made at format
   * time, ACLs granted after start. Ignored for an external cluster.
   */
  users: KafkaUsersFile;
  /**
   * The broker's certificate (tls.ts) and the CA clients verify it with: the client listener is
   * SASL_SSL. Ignored for an external cluster (its clients take KAFKA_TLS_CA_FILE).
   */
  tls: { keyAndChainFile: string; caFile: string };
}

export interface KafkaHandle extends ServiceHandle {
  readonly brokers: string[];
  /**
   * Each service's credentials. Local broker: one principal per service. External cluster: every
   * entry is the environment's KAFKA_SASL_* (or undefined: unauthenticated), since the stack
   * does not administer its users.
   */
  readonly credentials: Record<keyof KafkaCredentials, KafkaSasl | undefined>;
  readonly external: boolean;
  readonly dir: string | null;
  readonly logFile: string | null;
  readonly serverLog: string | null;
}

export function stackTopics(eventsPartitions = defaultEventsPartitions, dlqPartitions = defaultDlqPartitions, replicationFactor = 1): TopicSpec[] {
  return [
    { name: eventsTopic, partitions: eventsPartitions, replicationFactor },
    { name: dlqTopic, partitions: dlqPartitions, replicationFactor },
  ];
}

function adminClient(endpoint: KafkaEndpoint): Kafka {
  return new Kafka({
    clientId: 'ringpay-stack',
    brokers: [...endpoint.brokers],
    ...kafkaSaslConfig(endpoint.sasl),
    logLevel: logLevel.NOTHING,
    connectionTimeout: kafkaConnectionTimeoutMs,
    requestTimeout: kafkaRequestTimeoutMs,
    retry: { retries: 0 },
  });
}

async function withAdmin<T>(endpoint: KafkaEndpoint, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = adminClient(endpoint).admin();
  try {
    await withTimeout('kafka admin connect', admin.connect(), adminOperationTimeoutMs);
    return await withTimeout('kafka admin operation', fn(admin), adminOperationTimeoutMs);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** One health probe: the cluster answers metadata with a controller and at least one broker. */
export async function kafkaHealthy(endpoint: KafkaEndpoint): Promise<true> {
  return withAdmin(endpoint, async (admin) => {
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error('no brokers registered');
    if (cluster.controller === null || cluster.controller < 0) throw new Error('no active controller');
    return true as const;
  });
}

export async function waitForKafka(endpoint: KafkaEndpoint, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  await pollUntil(`kafka ${endpoint.brokers.join(',')}`, () => kafkaHealthy(endpoint), { timeoutMs, intervalMs: kafkaPollIntervalMs, signal });
}

/**
 * Creates the topics that do not exist yet, then checks every topic's partition count.
 * Idempotent; works on any cluster. A topic that exists with a different partition count is
 * an error (adding partitions would re-map keys to partitions, so it is never done silently).
 */
export async function createTopics(endpoint: KafkaEndpoint, topics: readonly TopicSpec[], timeoutMs: number = topicCreateTimeoutMs): Promise<void> {
  await pollUntil(
    'kafka topic creation',
    () =>
      withAdmin(endpoint, async (admin) => {
        const existing = new Set(await admin.listTopics());
        const missing = topics.filter((t) => !existing.has(t.name));
        if (missing.length > 0) {
          await admin.createTopics({
            waitForLeaders: true,
            timeout: kafkaRequestTimeoutMs,
            topics: missing.map((t) => ({
              topic: t.name,
              numPartitions: t.partitions,
              replicationFactor: t.replicationFactor,
              configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
            })),
          });
        }
        const meta = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.name) });
        for (const spec of topics) {
          const found = meta.topics.find((m) => m.name === spec.name);
          if (!found) throw new Error(`topic ${spec.name} missing after creation`);
          if (found.partitions.length !== spec.partitions) {
            throw new PermanentError(`topic ${spec.name} exists with ${found.partitions.length} partitions, expected ${spec.partitions}; refusing to change it`);
          }
          if (found.partitions.some((p) => p.leader < 0)) throw new Error(`topic ${spec.name} has partitions without a leader yet`);
        }
        return true as const;
      }),
    { timeoutMs, intervalMs: topicCreatePollIntervalMs },
  );
}

// Not named exports of kafkajs' CommonJS build (Node's ESM loader cannot find them statically).
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const aclOperations = { READ: AclOperationTypes.READ, WRITE: AclOperationTypes.WRITE } as const;

/**
 * Grants the ACLs (idempotent: the broker keeps one copy of an ACL created twice). Needs a super
 * user. Only ALLOWs: with `allow.everyone.if.no.acl.found=false`, anything not granted is denied.
 */
export async function grantAcls(endpoint: KafkaEndpoint, acls: readonly AclSpec[]): Promise<void> {
  await withAdmin(endpoint, (admin) => admin.createAcls({
    acl: acls.map((a) => ({
      resourceType: a.resource === 'TOPIC' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP,
      resourceName: a.name,
      resourcePatternType: a.pattern === 'LITERAL' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
      principal: `User:${a.principal}`,
      host: '*',
      operation: aclOperations[a.operation],
      permissionType: AclPermissionTypes.ALLOW,
    })),
  }));
}

/**
 * Waits until the broker's authorizer holds every ACL. createAcls returns once the controller
 * has committed them; the broker applies them from the metadata log a little later, and a
 * service that connects in between is refused (`Topic authorization failed`) and exits: a
 * start-up race seen once when the broker's JIT timing changed. DescribeAcls is answered from
 * that same authorizer, so seeing them all there means every service's first request is allowed.
 */
export async function waitForAcls(endpoint: KafkaEndpoint, acls: readonly AclSpec[], timeoutMs: number): Promise<void> {
  const wanted = new Set(acls.map(aclKey));
  await pollUntil('kafka ACLs in force', () => withAdmin(endpoint, async (admin) => {
    const { resources } = await admin.describeAcls({
      resourceType: AclResourceTypes.ANY, resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY,
    });
    const present = new Set<string>();
    for (const r of resources) {
      for (const a of r.acls) {
        present.add(`${r.resourceType}|${r.resourceName}|${r.resourcePatternType}|${a.principal}|${a.operation}|${a.permissionType}`);
      }
    }
    const missing = [...wanted].filter((key) => !present.has(key));
    if (missing.length > 0) throw new Error(`${missing.length} of ${wanted.size} ACLs not yet in force`);
    return true as const;
  }), { timeoutMs, intervalMs: aclPollIntervalMs });
}

/** How often waitForAcls looks again. */
const aclPollIntervalMs = 100;

function aclKey(a: AclSpec): string {
  const resourceType = a.resource === 'TOPIC' ? AclResourceTypes.TOPIC : AclResourceTypes.GROUP;
  const pattern = a.pattern === 'LITERAL' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED;
  return `${resourceType}|${a.name}|${pattern}|User:${a.principal}|${aclOperations[a.operation]}|${AclPermissionTypes.ALLOW}`;
}

/** Kafka's Uuid string form: 16 random bytes, base64url, no padding; never starting with '-'. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function findJava(): string {
  const fromHome = process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : undefined;
  if (fromHome && existsSync(fromHome)) return fromHome;
  const java = findExecutable('java');
  if (!java) throw new Error('java not found: run scripts/ensure-deps.sh (installs openjdk-17-jre-headless)');
  return java;
}

/** A JAAS option value: the passwords are base64url (kafka-credentials.ts), so quoting is enough. */
function jaasQuoted(value: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(value)) throw new Error('a Kafka JAAS value must be base64url');
  return `"${value}"`;
}

/**
 * The broker's config. It holds the admin's and the controller login's passwords (the broker logs
 * in with them), so it is written 0600 in the broker's own 0700 dir.
 */
export function renderServerProperties(o: { dataDir: string; brokerPort: number; controllerPort: number; defaultPartitions: number; users: KafkaUsersFile;
  tls: { keyAndChainFile: string; caFile: string } }): string {
  const scram = kafkaScramBrokerMechanism.toLowerCase();
  return [
    '# Generated by scripts/stack/kafka.ts: single-node KRaft (broker + controller).',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${o.controllerPort}`,
    // Clients: SASL_SSL with SCRAM only (TLS 1.2+, the stack's own CA; the broker's certificate in a
    // PEM keystore, its key unencrypted in a 0600 file). The controller listener takes SASL PLAIN with one
    // static login (the broker's own): KRaft cannot check SCRAM there (the credentials live in the
    // metadata log the controller serves), and a PLAINTEXT controller listener would let any
    // local process in as User:ANONYMOUS, which the broker's registration would need as a super user.
    `listeners=CLIENT://127.0.0.1:${o.brokerPort},CONTROLLER://127.0.0.1:${o.controllerPort}`,
    `advertised.listeners=CLIENT://127.0.0.1:${o.brokerPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=CLIENT',
    'listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_SSL',
    'ssl.keystore.type=PEM',
    `ssl.keystore.location=${o.tls.keyAndChainFile}`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${o.tls.caFile}`,
    'ssl.enabled.protocols=TLSv1.3,TLSv1.2',
    // ChaCha20-Poly1305 only. The broker runs C1 alone (below), and C1 has none of the AES-GCM
    // intrinsics (AES-NI, carry-less multiply): Java Flight Recorder on the broker at 400
    // payments/s found 60 % of its Java samples in GHASH.blockMult and AESCrypt in plain Java.
    // ChaCha20 is arithmetic C1 compiles well: 18 % of the samples, and 37 % fewer samples in all
    // over the same load (README, Benchmarks). Clients (kafkajs on OpenSSL) support both.
    'ssl.cipher.suites=TLS_CHACHA20_POLY1305_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
    'ssl.client.auth=none',
    `sasl.enabled.mechanisms=${kafkaScramBrokerMechanism}`,
    `listener.name.client.sasl.enabled.mechanisms=${kafkaScramBrokerMechanism}`,
    `sasl.mechanism.inter.broker.protocol=${kafkaScramBrokerMechanism}`,
    `listener.name.client.${scram}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password=${jaasQuoted(o.users.passwords.admin)};`,
    'listener.name.controller.sasl.enabled.mechanisms=PLAIN',
    'sasl.mechanism.controller.protocol=PLAIN',
    `listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password=${jaasQuoted(o.users.controllerPassword)} user_controller=${jaasQuoted(o.users.controllerPassword)};`,
    'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    'allow.everyone.if.no.acl.found=false',
    'super.users=User:admin;User:controller',
    `log.dirs=${o.dataDir}`,
    'auto.create.topics.enable=false',
    `num.partitions=${o.defaultPartitions}`,
    'default.replication.factor=1',
    'min.insync.replicas=1',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=8',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=8',
    'group.initial.rebalance.delay.ms=0',
    'num.network.threads=2',
    'num.io.threads=4',
    'num.recovery.threads.per.data.dir=1',
    'log.retention.hours=168',
    'log.segment.bytes=67108864',
    // Small sparse index preallocation: 72+ partitions on a dev box.
    'log.index.size.max.bytes=1048576',
    'delete.topic.enable=true',
    '',
  ].join('\n');
}

function renderLog4j(logsDir: string): string {
  return [
    '# Generated by scripts/stack/kafka.ts: Kafka logs to files, not stdout.',
    'log4j.rootLogger=INFO, serverFile',
    'log4j.appender.serverFile=org.apache.log4j.RollingFileAppender',
    `log4j.appender.serverFile.File=${join(logsDir, 'server.log')}`,
    'log4j.appender.serverFile.MaxFileSize=50MB',
    'log4j.appender.serverFile.MaxBackupIndex=2',
    'log4j.appender.serverFile.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.serverFile.layout.ConversionPattern=[%d] %p %m (%c)%n',
    'log4j.appender.stateFile=org.apache.log4j.RollingFileAppender',
    `log4j.appender.stateFile.File=${join(logsDir, 'state-change.log')}`,
    'log4j.appender.stateFile.MaxFileSize=20MB',
    'log4j.appender.stateFile.MaxBackupIndex=1',
    'log4j.appender.stateFile.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.stateFile.layout.ConversionPattern=[%d] %p %m (%c)%n',
    'log4j.logger.org.apache.kafka=INFO',
    'log4j.logger.kafka=INFO',
    'log4j.logger.kafka.request.logger=WARN',
    'log4j.logger.state.change.logger=INFO, stateFile',
    'log4j.additivity.state.change.logger=false',
    '',
  ].join('\n');
}

class ExternalKafka implements KafkaHandle {
  readonly name = 'kafka';
  readonly external = true;
  readonly dir = null;
  readonly logFile = null;
  readonly serverLog = null;
  readonly brokers: string[];
  readonly credentials: Record<keyof KafkaCredentials, KafkaSasl | undefined>;
  readonly #topics: TopicSpec[];
  readonly #sasl: KafkaSasl | undefined;
  constructor(brokers: string[], topics: TopicSpec[]) {
    this.brokers = brokers;
    this.#topics = topics;
    this.#sasl = kafkaSaslFromEnv(process.env);
    const sasl = this.#sasl;
    this.credentials = { admin: sasl, relay: sasl, processor: sasl, dlq: sasl, notifier: sasl };
  }
  async start(): Promise<void> {
    const endpoint = { brokers: this.brokers, sasl: this.#sasl };
    await waitForKafka(endpoint, kafkaReadyTimeoutMs);
    await createTopics(endpoint, this.#topics);
  }
  async stop(): Promise<void> {
    throw new Error('kafka is external (KAFKA_BROKERS); the stack does not manage it');
  }
  async kill(): Promise<void> {
    throw new Error('kafka is external (KAFKA_BROKERS); the stack does not manage it');
  }
  status(): ServiceStatus {
    return { name: this.name, running: true, pid: null, external: true };
  }
}

class LocalKafka implements KafkaHandle {
  readonly name = 'kafka';
  readonly external = false;
  readonly brokers: string[];
  readonly credentials: KafkaCredentials;
  readonly dir: string;
  readonly logFile: string;
  readonly serverLog: string;
  readonly #opts: KafkaOptions;
  readonly #admin: KafkaEndpoint;
  readonly #java: string;
  readonly #configFile: string;
  readonly #dataDir: string;
  readonly #proc: ManagedProcess;
  #topicsCreated = false;

  constructor(opts: KafkaOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
    this.logFile = opts.logFile;
    this.brokers = [`127.0.0.1:${opts.brokerPort}`];
    this.credentials = kafkaCredentialsOf(opts.users, opts.tls.caFile);
    this.#admin = { brokers: this.brokers, sasl: this.credentials.admin };
    if (!existsSync(kafkaLibsMarker)) {
      throw new Error(`Kafka ${kafkaVersion} jars missing (${kafkaLibsDir}): run scripts/ensure-deps.sh`);
    }
    this.#java = findJava();
    this.#configFile = join(opts.dir, 'server.properties');
    this.#dataDir = join(opts.dir, 'data');
    const logsDir = join(opts.dir, 'logs');
    this.serverLog = join(logsDir, 'server.log');
    const log4jFile = join(opts.dir, 'log4j.properties');
    const heapMb = opts.heapMb ?? kafkaHeapMb;
    const admin = this.#admin;
    this.#proc = new ManagedProcess({
      name: 'kafka',
      command: this.#java,
      args: [
        `-Xmx${heapMb}m`,
        `-Xms${heapMb}m`,
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        // C1 only: the broker of a local stack handles a few thousand small records a second,
        // and C2's compilations of it never pay back on two shared cores: end to end at 300
        // payments/s on a fresh stack, Kafka took 0.55-0.58 ms of CPU per payment with C1 alone
        // against 0.72-0.97 ms with tiered compilation (2 interleaved rounds each).
        '-XX:TieredStopAtLevel=1',
        '-XX:+ExitOnOutOfMemoryError',
        '-XX:-UsePerfData',
        '-Djava.awt.headless=true',
        `-Dlog4j.configuration=file:${log4jFile}`,
        `-Dkafka.logs.dir=${logsDir}`,
        '-cp',
        join(kafkaLibsDir, '*'),
        'kafka.Kafka',
        this.#configFile,
      ],
      logFile: opts.logFile,
      ...(opts.user ? { user: { uid: opts.user.uid, gid: opts.user.gid } } : {}),
      stopTimeoutMs: kafkaStopTimeoutMs,
      readyTimeoutMs: kafkaReadyTimeoutMs,
      ready: ({ signal }) => waitForKafka(admin, kafkaReadyTimeoutMs, signal),
    });
  }

  #prepare(): void {
    const { dir } = this.#opts;
    mkdirSync(join(dir, 'logs'), { recursive: true });
    mkdirSync(this.#dataDir, { recursive: true });
    const defaultPartitions = this.#opts.topics.find((t) => t.name === eventsTopic)?.partitions ?? defaultEventsPartitions;
    writeFileSync(
      this.#configFile,
      renderServerProperties({
        dataDir: this.#dataDir, brokerPort: this.#opts.brokerPort, controllerPort: this.#opts.controllerPort,
        defaultPartitions: Math.min(defaultPartitions, 8), users: this.#opts.users, tls: this.#opts.tls,
      }),
      { mode: 0o600 },
    );
    writeFileSync(join(dir, 'log4j.properties'), renderLog4j(join(dir, 'logs')));
    // Configs written here and data of an older (root) run: the broker's user owns its dir.
    chownTree(dir, this.#opts.user ?? null);
  }

  async #formatIfNeeded(): Promise<void> {
    // Formatted with SCRAM users by this code: the marker names the mechanism. A data dir formatted
    // before (no users, a PLAINTEXT listener) would start a broker nobody can log in to.
    const usersMarker = join(this.#opts.dir, 'scram-users-formatted');
    if (existsSync(join(this.#dataDir, 'meta.properties'))) {
      if (!existsSync(usersMarker)) {
        throw new PermanentError(`${this.#dataDir} was formatted without SCRAM users (before issue #17 part 3): remove ${this.#opts.dir} to re-create it (its events are lost)`);
      }
      return;
    }
    const idFile = join(this.#opts.dir, 'cluster-id');
    const clusterId = existsSync(idFile) ? readFileSync(idFile, 'utf8').trim() : newClusterId();
    writeFileSync(idFile, clusterId + '\n');
    say('kafka', `formatting storage ${this.#dataDir} (cluster id ${clusterId})`);
    // The SCRAM users, stored by the format as salted verifiers in the metadata log. Their
    // passwords go in an argument file (0600, removed after; StorageTool's argument parser reads
    // `@file` as one argument per line), not on the command line, where any local user could read
    // them (`ps`, /proc/<pid>/cmdline).
    const argFile = join(this.#opts.dir, 'format-scram.args');
    writeFileSync(argFile, Object.values(this.credentials).map((c) =>
      `--add-scram\n${kafkaScramBrokerMechanism}=[name=${c.username},iterations=${kafkaScramIterations},password=${c.password}]\n`).join(''), { mode: 0o600 });
    if (this.#opts.user) chownTree(argFile, this.#opts.user);
    try {
      await this.#format(clusterId, argFile);
    } finally {
      rmSync(argFile, { force: true });
    }
    writeFileSync(usersMarker, `${kafkaScramBrokerMechanism}\n`);
    chownTree(this.#opts.dir, this.#opts.user ?? null);
  }

  async #format(clusterId: string, argFile: string): Promise<void> {
    await runCommand(
      this.#java,
      [
        '-Xmx256m',
        '-XX:-UsePerfData',
        `-Dlog4j.configuration=file:${join(this.#opts.dir, 'log4j.properties')}`,
        '-cp',
        join(kafkaLibsDir, '*'),
        'kafka.tools.StorageTool',
        'format',
        '-t',
        clusterId,
        '-c',
        this.#configFile,
        '--ignore-formatted',
        `@${argFile}`,
      ],
      {
        name: 'kafka-storage-format', logFile: this.#opts.logFile, timeoutMs: kafkaFormatTimeoutMs,
        ...(this.#opts.user ? { user: { uid: this.#opts.user.uid, gid: this.#opts.user.gid } } : {}),
      },
    );
  }

  async start(): Promise<void> {
    this.#prepare();
    await this.#formatIfNeeded();
    await this.#proc.start();
    if (!this.#topicsCreated) {
      await createTopics(this.#admin, this.#opts.topics);
      const events = this.#opts.topics.find((t) => t.name === eventsTopic)?.name ?? eventsTopic;
      const dlq = this.#opts.topics.find((t) => t.name === dlqTopic)?.name ?? dlqTopic;
      const acls = kafkaAcls({ events, dlq });
      await grantAcls(this.#admin, acls);
      await waitForAcls(this.#admin, acls, aclsInForceTimeoutMs);
      this.#topicsCreated = true;
    }
  }

  async stop(): Promise<void> {
    await this.#proc.stop();
  }

  async kill(): Promise<void> {
    await this.#proc.kill();
  }

  status(): ServiceStatus {
    return { ...this.#proc.status(), external: false };
  }
}

/** KAFKA_BROKERS (comma-separated host:port) when set. */
export function externalBrokersFromEnv(): string[] | undefined {
  const raw = process.env.KAFKA_BROKERS;
  if (!raw) return undefined;
  const brokers = raw.split(',').map((b) => b.trim()).filter(Boolean);
  return brokers.length > 0 ? brokers : undefined;
}

/** A Kafka handle (not started): external when KAFKA_BROKERS is set, else a local broker. */
export function createKafka(opts: KafkaOptions): KafkaHandle {
  const external = externalBrokersFromEnv();
  if (external) return new ExternalKafka(external, opts.topics);
  return new LocalKafka(opts);
}

export async function startKafka(opts: KafkaOptions): Promise<KafkaHandle> {
  const handle = createKafka(opts);
  try {
    await handle.start();
  } catch (err) {
    throw new Error(`kafka failed to start: ${errorMessage(err)}`);
  }
  return handle;
}
