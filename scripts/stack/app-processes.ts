// The stack's application processes beside the payment nodes: the sandbox PSP, the reconciler, the
// reporting service, the notifier, the admin service, the console and the processors. Each is a ManagedProcess (restartable, killable through the control API) running
// on the pinned Node 24, ready when its HTTP health endpoint answers 200.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { kafkaSaslEnv, type KafkaSasl } from '../../lib/kafka-event-bus.ts';
import { ManagedProcess } from './proc.ts';
import type { ServiceUser } from './service-user.ts';
import { pinnedNodeBinary, pollUntil, repoRoot } from './util.ts';

export const appReadyTimeoutMs = 60_000;
export const appReadyPollIntervalMs = 100;
export const appReadyProbeTimeoutMs = 2_000;
/** Processors finish their batch and commit on SIGTERM; the PSP finishes in-flight requests. */
export const appStopTimeoutMs = 30_000;

async function healthy(url: string): Promise<true> {
  const res = await fetch(url, { signal: AbortSignal.timeout(appReadyProbeTimeoutMs) });
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return true;
}

function appProcess(name: string, entry: string, env: Record<string, string>, healthUrl: string, logFile: string, user: ServiceUser | null | undefined): ManagedProcess {
  return new ManagedProcess({
    name,
    command: pinnedNodeBinary(),
    args: [join(repoRoot, entry)],
    cwd: repoRoot,
    env: { ...process.env, ...env },
    logFile,
    // The runner is root: the service is not (scripts/stack/service-user.ts).
    ...(user ? { user: { uid: user.uid, gid: user.gid } } : {}),
    stopSignal: 'SIGTERM',
    stopTimeoutMs: appStopTimeoutMs,
    readyTimeoutMs: appReadyTimeoutMs,
    ready: ({ signal }) =>
      pollUntil(`${name} ${healthUrl}`, () => healthy(healthUrl), { timeoutMs: appReadyTimeoutMs, intervalMs: appReadyPollIntervalMs, signal }).then(() => {}),
  });
}

export interface SandboxPspSpec {
  port: number;
  dataDir: string;
  logFile: string;
  secretKey: string;
  webhookSecret: string;
  /** Where webhooks go: the public nginx (routes /webhooks/psp/sandbox/<checkout id>). */
  webhookBaseUrl: string;
  /** The CA of the public listener's certificate (NODE_EXTRA_CA_CERTS: trusted besides the system's). */
  webhookCaFile?: string;
  /** Extra PSP_* settings (latency, fault rates). */
  env?: Record<string, string>;
  user?: ServiceUser | null;
}

export function createSandboxPsp(spec: SandboxPspSpec): ManagedProcess {
  mkdirSync(spec.dataDir, { recursive: true });
  return appProcess('psp', 'sandbox-psp/main.ts', {
    ...spec.env,
    PSP_HOST: '127.0.0.1',
    PSP_PORT: String(spec.port),
    PSP_DATA_DIR: spec.dataDir,
    PSP_SECRET_KEY: spec.secretKey,
    PSP_WEBHOOK_SECRET: spec.webhookSecret,
    PSP_WEBHOOK_BASE_URL: spec.webhookBaseUrl,
    ...(spec.webhookCaFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: spec.webhookCaFile }),
  }, `http://127.0.0.1:${spec.port}/healthz`, spec.logFile, spec.user);
}

export interface NimbusPspSpec {
  port: number;
  dataDir: string;
  logFile: string;
  apiKey: string;
  hmacKey: string;
  /** Where notification batches go: the public nginx (routes /webhooks/psp/nimbus/<checkout id>). */
  notificationBaseUrl: string;
  notificationCaFile?: string;
  env?: Record<string, string>;
  user?: ServiceUser | null;
}


/**
 * The stack's PSP routing (issue #16; processor/psp/routing.ts): NOK and DKK payments fit both
 * providers and go to the cheaper Nimbus, with the sandbox as its failover; every other currency
 * fits only the sandbox (so the rest of the suite sees the sandbox PSP alone).
 */
export const stackPspRouting = {
  providers: {
    sandbox: { cost: { percentBps: 140, fixedMinor: 25 } },
    nimbus: { cost: { percentBps: 100, fixedMinor: 20 } },
  },
  merchants: {
    '*': [
      { provider: 'nimbus', currencies: ['NOK', 'DKK'] },
      { provider: 'sandbox' },
    ],
  },
};

export function createNimbusPsp(spec: NimbusPspSpec): ManagedProcess {
  mkdirSync(spec.dataDir, { recursive: true });
  return appProcess('nimbus', 'nimbus-psp/main.ts', {
    ...spec.env,
    NIMBUS_HOST: '127.0.0.1',
    NIMBUS_PORT: String(spec.port),
    NIMBUS_DATA_DIR: spec.dataDir,
    NIMBUS_API_KEY: spec.apiKey,
    NIMBUS_HMAC_KEY: spec.hmacKey,
    NIMBUS_NOTIFICATION_BASE_URL: spec.notificationBaseUrl,
    ...(spec.notificationCaFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: spec.notificationCaFile }),
  }, `http://127.0.0.1:${spec.port}/healthz`, spec.logFile, spec.user);
}

export interface ProcessorSpec {
  id: string;
  adminPort: number;
  logFile: string;
  databaseUrl: string;
  kafkaBrokers: readonly string[];
  /** The `processor` principal (READ the events topic and its group, WRITE the DLQ). */
  kafkaSasl: KafkaSasl | undefined;
  internalUrl: string;
  /** The CA of the internal listener's certificate (NODE_EXTRA_CA_CERTS: trusted besides the system's). */
  internalCaFile?: string;
  pspUrl: string;
  pspSecretKey: string;
  /** The processor service's own internal API token (nodes know its digest). */
  internalToken: string;
  eventsTopic: string;
  dlqTopic: string;
  /** RINGPAY_FIELD_KEYS_FILE: opens the events' sealed fields, seals what goes to Postgres. */
  fieldKeysFile: string;
  /** RINGPAY_EVENT_KEYS_FILE: every node's change-event signing key (lib/event-signing.ts); unsigned or forged events are refused. */
  eventKeysFile: string;
  env?: Record<string, string>;
  user?: ServiceUser | null;
}

export function createProcessor(spec: ProcessorSpec): ManagedProcess {
  return appProcess(spec.id, 'processor/main.ts', {
    ...spec.env,
    PROCESSOR_ID: spec.id,
    PROCESSOR_ADMIN_PORT: String(spec.adminPort),
    DATABASE_URL: spec.databaseUrl,
    KAFKA_BROKERS: spec.kafkaBrokers.join(','),
    ...kafkaSaslEnv(spec.kafkaSasl),
    RINGPAY_INTERNAL_URL: spec.internalUrl,
    ...(spec.internalCaFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: spec.internalCaFile }),
    RINGPAY_INTERNAL_TOKEN: spec.internalToken,
    PSP_BASE_URL: spec.pspUrl,
    PSP_SECRET_KEY: spec.pspSecretKey,
    RINGPAY_EVENTS_TOPIC: spec.eventsTopic,
    RINGPAY_DLQ_TOPIC: spec.dlqTopic,
    RINGPAY_FIELD_KEYS_FILE: spec.fieldKeysFile,
    RINGPAY_EVENT_KEYS_FILE: spec.eventKeysFile,
  }, `http://127.0.0.1:${spec.adminPort}/readyz`, spec.logFile, spec.user);
}

export interface ReconcilerSpec {
  adminPort: number;
  logFile: string;
  databaseUrl: string;
  pspUrl: string;
  pspSecretKey: string;
  /** The bearer token of its admin trigger (POST /admin/reconcile). */
  adminToken: string;
  /** Extra RECONCILER_* settings (RECONCILER_DAILY_AT, RECONCILER_CATCH_UP). */
  env?: Record<string, string>;
  user?: ServiceUser | null;
}

/** The reconciler daemon (reconciler/main.ts): the daily settlement run, metrics on its admin port. */
export function createReconciler(spec: ReconcilerSpec): ManagedProcess {
  return appProcess('reconciler', 'reconciler/main.ts', {
    RECONCILER_DAILY_AT: process.env.RECONCILER_DAILY_AT ?? '02:00',
    ...spec.env,
    RECONCILER_ADMIN_PORT: String(spec.adminPort),
    DATABASE_URL: spec.databaseUrl,
    PSP_BASE_URL: spec.pspUrl,
    PSP_SECRET_KEY: spec.pspSecretKey,
    RECONCILER_ADMIN_TOKEN: spec.adminToken,
  }, `http://127.0.0.1:${spec.adminPort}/readyz`, spec.logFile, spec.user);
}

export interface ReportingSpec {
  port: number;
  logFile: string;
  /** As ringpay_reporting: SELECT on payments only. */
  databaseUrl: string;
  /** The nodes' API keys file (digests only): the same merchants, the same keys. */
  apiKeysFile: string;
  /** Run as this unprivileged user when the runner is root (service-user.ts). */
  user?: ServiceUser | null;
}

/** The reporting service (reporting/main.ts): a merchant's payments, paged or as CSV, behind nginx. */
export function createReporting(spec: ReportingSpec): ManagedProcess {
  return appProcess('reporting', 'reporting/main.ts', {
    REPORTING_PORT: String(spec.port),
    DATABASE_URL: spec.databaseUrl,
    RINGPAY_API_KEYS_FILE: spec.apiKeysFile,
  }, `http://127.0.0.1:${spec.port}/readyz`, spec.logFile, spec.user);
}

export interface NotifierSpec {
  port: number;
  logFile: string;
  /** As ringpay_notifier: its own tables only. */
  databaseUrl: string;
  kafkaBrokers: readonly string[];
  eventsTopic: string;
  /** The nodes' API keys file (digests only): the same merchants, the same keys. */
  apiKeysFile: string;
  /** RINGPAY_FIELD_KEYS_FILE: opens the events' sealed fields, seals endpoint secrets and event bodies. */
  fieldKeysFile: string;
  /** Its Kafka login (principal `notifier`: READ payments.events and its group; over TLS with the CA). */
  kafkaSasl: KafkaSasl | undefined;
  /** RINGPAY_EVENT_KEYS_FILE: every node's event-signing key; events no node signed make no merchant event. */
  eventKeysFile: string;
  /** NOTIFIER_* limits (retries, disabling) and the dev mode flag. */
  env?: Record<string, string>;
  user?: ServiceUser | null;
}

/** The notifier (notifier/main.ts): merchants' outgoing webhooks and their API, behind nginx. */
export function createNotifier(spec: NotifierSpec): ManagedProcess {
  return appProcess('notifier', 'notifier/main.ts', {
    ...spec.env,
    NOTIFIER_PORT: String(spec.port),
    DATABASE_URL: spec.databaseUrl,
    KAFKA_BROKERS: spec.kafkaBrokers.join(','),
    ...kafkaSaslEnv(spec.kafkaSasl),
    RINGPAY_EVENTS_TOPIC: spec.eventsTopic,
    RINGPAY_API_KEYS_FILE: spec.apiKeysFile,
    RINGPAY_FIELD_KEYS_FILE: spec.fieldKeysFile,
    RINGPAY_EVENT_KEYS_FILE: spec.eventKeysFile,
  }, `http://127.0.0.1:${spec.port}/readyz`, spec.logFile, spec.user);
}

export interface AdminSpec {
  port: number;
  logFile: string;
  /** The keys file it changes (through admin/keys-file.ts); its dir must be the service user's. */
  apiKeysFile: string;
  /** RINGPAY_ADMIN_OPERATORS: operator names with their tokens' SHA-256 digests, never a token. */
  operators: string;
  user?: ServiceUser | null;
}

/** The admin service (admin/main.ts): operators' merchants and API keys, behind nginx's internal listener. */
export function createAdmin(spec: AdminSpec): ManagedProcess {
  return appProcess('admin', 'admin/main.ts', {
    ADMIN_PORT: String(spec.port),
    RINGPAY_API_KEYS_FILE: spec.apiKeysFile,
    RINGPAY_ADMIN_OPERATORS: spec.operators,
  }, `http://127.0.0.1:${spec.port}/readyz`, spec.logFile, spec.user);
}

export interface ConsoleSpec {
  port: number;
  logFile: string;
  /** As ringpay_console (db/roles.ts). */
  databaseUrl: string;
  /** nginx's internal listener, its CA, and the console service's own internal token (read, resolve). */
  internalUrl: string;
  internalCaFile: string;
  internalToken: string;
  pspUrl: string;
  pspSecretKey: string;
  kafkaBrokers: readonly string[];
  /** The `dlq` principal: READ the DLQ, WRITE the events topic (replays). */
  kafkaSasl: KafkaSasl | undefined;
  eventsTopic: string;
  dlqTopic: string;
  prometheusUrl: string;
  /** The reconciler's admin port and trigger token (a rerun of a day). */
  reconcilerUrl: string;
  reconcilerAdminToken: string;
  user?: ServiceUser | null;
}

/** The operators' web console (console/main.ts), behind nginx's console listener. */
export function createConsole(spec: ConsoleSpec): ManagedProcess {
  return appProcess('console', 'console/main.ts', {
    CONSOLE_PORT: String(spec.port),
    DATABASE_URL: spec.databaseUrl,
    RINGPAY_INTERNAL_URL: spec.internalUrl,
    NODE_EXTRA_CA_CERTS: spec.internalCaFile,
    RINGPAY_INTERNAL_TOKEN: spec.internalToken,
    PSP_BASE_URL: spec.pspUrl,
    PSP_SECRET_KEY: spec.pspSecretKey,
    KAFKA_BROKERS: spec.kafkaBrokers.join(','),
    ...kafkaSaslEnv(spec.kafkaSasl),
    RINGPAY_EVENTS_TOPIC: spec.eventsTopic,
    RINGPAY_DLQ_TOPIC: spec.dlqTopic,
    PROMETHEUS_URL: spec.prometheusUrl,
    RECONCILER_URL: spec.reconcilerUrl,
    RECONCILER_ADMIN_TOKEN: spec.reconcilerAdminToken,
  }, `http://127.0.0.1:${spec.port}/readyz`, spec.logFile, spec.user);
}
