// The stack info file: what `scripts/stack.ts --info-file` writes once everything is ready,
// and what tests read (test/helpers/stack.ts) via RINGPAY_STACK_INFO. It holds every secret of
// the stack (tokens, keys), so it is written 0600, and the control API serves it only to callers
// holding controlToken.

import type { InternalService } from '../../lib/internal-credentials.ts';
import type { KafkaSasl } from '../../lib/kafka-event-bus.ts';

export interface StackNodeInfo {
  id: string;
  /** Where nginx reaches the node's public API: a Unix socket (the node has no public TCP port). */
  publicSocket: string;
  adminPort: number;
  dataDir: string;
  logFile: string;
}

export interface StackInfo {
  /** nginx public entry point, TLS only, e.g. https://127.0.0.1:8080 */
  publicUrl: string;
  /** The stack's CA (PEM), which issued the public listener's certificate: clients trust it. */
  publicCaFile: string;
  /** The public listener's certificate and key (for a bench target's nginx that serves like the stack's). */
  publicTls: { certFile: string; keyFile: string; caFile: string };
  /** nginx internal entry point, for processors; every call carries its caller's own token (internalTokens). */
  internalUrl: string;
  /** The runner's control API, and the bearer token every call to it needs (also in <dir>/control-token, 0600). */
  controlUrl: string;
  controlToken: string;
  /** The admin URL of database `ringpay` (the superuser, which owns the tables and runs the
   *  migrations), password included: for DDL and cleanup in tests and tools only. */
  databaseUrl: string;
  /** Per-service login roles (db/roles.ts), passwords included; all equal to databaseUrl when
   *  Postgres is external (DATABASE_URL). readonly: SELECT only, for tests, checks and ops. */
  databaseUrls: { processor: string; reconciler: string; reporting: string; notifier: string; console: string; readonly: string };
  /** host:port list */
  kafkaBrokers: string[];
  /**
   * SASL/SCRAM credentials per Kafka principal (scripts/stack/kafka-credentials.ts): `admin` is the
   * super user (tests, tools), the others are the services' least-privilege logins. Undefined
   * entries: an external cluster reached without authentication.
   */
  kafkaCredentials: Record<'admin' | 'relay' | 'processor' | 'dlq' | 'notifier', KafkaSasl | undefined>;
  nodes: StackNodeInfo[];
  /** The sandbox PSP: base URL, our secret key there, its webhook signing secret. */
  psp: { url: string; secretKey: string; webhookSecret: string; logFile: string };
  /** Issue #16: the Nimbus PSP (absent in info files of older stacks) and the processors' routing file. */
  nimbus?: { url: string; apiKey: string; hmacKey: string; logFile: string; routingFile: string };
  processors: { id: string; adminPort: number; logFile: string }[];
  /** The reconciler daemon (absent in info files of older stacks); its admin trigger needs adminToken. */
  reconciler?: { adminPort: number; logFile: string; adminToken: string };
  /** The reporting service (absent in info files of older stacks); the public nginx routes to it. */
  reporting?: { port: number; logFile: string };
  /** The notifier (merchant webhooks; absent in info files of older stacks); the public nginx routes its API to it. */
  notifier?: { port: number; logFile: string; devAllowLoopback: boolean };
  /** Prometheus (absent in info files of older stacks): scrapes every component, evaluates the alerts. */
  prometheus?: { url: string; logFile: string };
  /** Issue #18: where the services write their trace files; absent unless the stack runs with --tracing. */
  tracesDir?: string;
  /**
   * The operators' admin API (absent in info files of older stacks): `url` is its base through
   * nginx's internal listener (`<url>/merchants`, `<url>/keys/…`); `port` the service itself on
   * 127.0.0.1. The operator token is also in `operatorTokenFile` (<dir>/secrets/operator-token, 0600).
   */
  admin?: { url: string; port: number; logFile: string; operator: string; operatorToken: string; operatorTokenFile: string };
  /**
   * The operators' web console (absent in info files of older stacks): `url` is nginx's console
   * listener (TLS, the stack's CA), `port` the service itself on 127.0.0.1.
   */
  console?: { url: string; port: number; logFile: string };
  /** The merchants' API keys file (digests only; absent in older info files: `<dir>/api-keys.json` then). */
  apiKeysFile?: string;
  /** merchant_demo_read: merchant_demo's restricted key (scope read). */
  apiKeys: { merchant_demo: string; merchant_other: string; merchant_demo_read: string };
  /**
   * One internal API token per service (lib/internal-credentials.ts): `processor` (the
   * processors'), `ops` (operators, the tests), `audit` (read-only checks), `console` (the web console's). Sent as
   * X-Ringpay-Internal-Token; nginx adds none.
   */
  internalTokens: Record<InternalService, string>;
  /**
   * The key ring that seals payment methods, customer refs, metadata and webhook bodies at rest
   * (lib/field-crypto.ts): `<dir>/secrets/field-keys.json`, 0600, outside every data dir. Nodes
   * and processors get it as RINGPAY_FIELD_KEYS_FILE.
   */
  fieldKeysFile: string;
  /**
   * Every node's change-event signing key (lib/event-signing.ts): `<dir>/secrets/event-keys.json`,
   * 0600. Processors get it as RINGPAY_EVENT_KEYS_FILE; each node only its own key
   * (RINGPAY_EVENT_SIGNING_KEY). Tests sign events with it.
   */
  eventKeysFile: string;
  /** The unprivileged user the services run as when the runner is root (nginx's workers too); null otherwise. */
  serviceUser: { name: string; uid: number; gid: number } | null;
  /** The stack's directory (data, logs, configs). */
  dir: string;
  topics: { events: string; eventsPartitions: number; dlq: string; dlqPartitions: number };
  postgres: { external: boolean; dataDir: string | null; logFile: string | null };
  kafka: { external: boolean; dir: string | null; logFile: string | null; serverLog: string | null };
  nginx: { configFile: string; accessLog: string; errorLog: string; logFile: string; publicPort: number; internalPort: number };
  /** The runner's pid. */
  pid: number;
  startedAt: string;
}
