// The Ringpay local stack runner.
//
//   node scripts/stack.ts [--nodes 3] [--port 8080] [--dir .stack/local] [--ephemeral [--dir new-dir]]
//                         [--info-file path] [--events-partitions 64] [--dlq-partitions 8]
//                         [--nginx-workers 1] [--node-entry payment-svc/main.ts] [--processors 1]
//                         [--tracing]
//
// --tracing: one trace per payment (issue #18): every service runs with RINGPAY_TRACING=1 and
// writes OTLP/JSON span files to <dir>/traces (lib/tracing.ts); read one payment's with
// `node scripts/trace.ts --dir <dir> <merchant_id> <checkout_id>`. Off by default.
//
// Starts Postgres (+ migrations), Kafka (+ topics), N payment nodes (each with its CDC relay),
// the sandbox PSP, nginx, the processors, the reconciler, the reporting service, the notifier and
// the operators' admin service (admin/: merchants and API keys, behind the operator token made
// into <dir>/secrets/operator-token, on nginx's internal listener only); waits for health; prints
// where everything is; writes the info file (see scripts/stack/info.ts); serves the control
// API (scripts/stack/control.ts); on Ctrl-C/SIGTERM stops everything it started (nodes first,
// then nginx, Kafka, Postgres).
//
// A persistent --dir keeps its ports in <dir>/ports.json: nginx's consistent-hash ring is built
// from the node addresses, so the same dir must always get the same node ports (or its keys
// would move to nodes that do not have their data). --ephemeral uses random free ports and a
// temp dir removed at exit.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { pruneTraceFiles } from '../lib/trace-file-exporter.ts';
import { tracesDirEnv, tracingEnv } from '../lib/tracing.ts';
import { tracingLimits } from '../lib/tracing-limits.ts';
import { parseArgs } from 'node:util';
import { testApiKeys, demoApiKey, demoMerchantId, demoReadApiKey, ensureApiKeysFile, otherApiKey } from './stack/api-keys.ts';
import { startControlServer, type ControlServer } from './stack/control.ts';
import type { StackInfo } from './stack/info.ts';
import { migrate } from '../db/migrate.ts';
import { applyServiceRoles, newDatabasePassword, redactDatabaseUrl, serviceRoles, urlWithCredentials } from '../db/roles.ts';
import { createAdmin, createConsole, createNimbusPsp, createNotifier, createProcessor, createReconciler, createReporting, createSandboxPsp, stackPspRouting } from './stack/app-processes.ts';
import { createPrometheus } from './stack/prometheus.ts';
import { createKafka, defaultDlqPartitions, defaultEventsPartitions, dlqTopic, eventsTopic, externalBrokersFromEnv, stackTopics, type KafkaHandle } from './stack/kafka.ts';
import { abuseLimitsFromEnv, createNginx, type NginxHandle } from './stack/nginx.ts';
import { guardRing } from './stack/ring-guard.ts';
import { guardCheckoutIdLayout } from './stack/id-layout-guard.ts';
import { createPaymentNodes, nodeDataDir, nodeId, nodePublicSocket, paymentNodeEntry, type PaymentNodeSpec } from './stack/payment-nodes.ts';
import { isPortFree, pickFreePort, pickFreePorts } from './stack/ports.ts';
import { createPostgres, databaseName, type PostgresHandle } from './stack/postgres.ts';
import { killAllManagedSync, liveManagedPids, reapStaleGroups, trackChildrenIn, type ServiceHandle } from './stack/proc.ts';
import { errorMessage, repoRoot, say, withTimeout } from './stack/util.ts';
import { ensureFieldKeysFile, fieldKeysFileName } from './stack/field-keys.ts';
import { ensureKafkaUsersFile, kafkaUsersFileName } from './stack/kafka-credentials.ts';
import { ensureEventKeysFile, eventKeysFileName } from './stack/event-keys.ts';
import { ensureOperatorToken, operatorTokenFileName, stackOperatorName, stackOperatorsSetting } from './stack/operator-token.ts';
import { ensureLocalCa } from './stack/tls.ts';
import { eventSigningKeyEnv, eventSigningKeySetting } from '../lib/event-signing.ts';
import { kafkaSaslEnv } from '../lib/kafka-event-bus.ts';
import { assertPassable, chownTree, makePassable, ensurePrivateDir, privateDirMode, privateUmask, serviceUser, sharedStackDirMode } from './stack/service-user.ts';
import { newAdminToken } from '../lib/admin-token.ts';
import { internalServicesSetting, newInternalTokens } from '../lib/internal-credentials.ts';

/** Whole ordered shutdown; past it every child gets SIGKILL. */
export const shutdownTimeoutMs = 120_000;
/** A second Ctrl-C/SIGTERM this long after the first forces SIGKILL (a terminal and a wrapper script may both deliver the first). */
export const repeatSignalForceAfterMs = 2_000;
export const maxNodes = 64;

function parseCli() {
  return parseArgs({
    options: {
      nodes: { type: 'string', default: '3' },
      port: { type: 'string' },
      dir: { type: 'string' },
      ephemeral: { type: 'boolean', default: false },
      'info-file': { type: 'string' },
      'events-partitions': { type: 'string', default: String(defaultEventsPartitions) },
      'dlq-partitions': { type: 'string', default: String(defaultDlqPartitions) },
      'nginx-workers': { type: 'string', default: '1' },
      'node-entry': { type: 'string' },
    processors: { type: 'string', default: '1' },
      tracing: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
}

let parsed: ReturnType<typeof parseCli>;
try {
  parsed = parseCli();
} catch (err) {
  say('stack', `${errorMessage(err)} (see --help)`);
  process.exit(2);
}
const args = parsed.values;

if (args.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
  process.exit(0);
}

function intArg(name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    say('stack', `--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}

const nodeCount = intArg('nodes', args.nodes, 1, maxNodes);
const eventsPartitions = intArg('events-partitions', args['events-partitions'], 1, 10_000);
const dlqPartitions = intArg('dlq-partitions', args['dlq-partitions'], 1, 10_000);
const nginxWorkers = intArg('nginx-workers', args['nginx-workers'], 1, 64);
const processorCount = intArg('processors', args.processors, 0, 16);
const ephemeral = args.ephemeral === true;
const explicitPublicPort = args.port === undefined ? undefined : intArg('port', args.port, 1, 65_535);
const defaultPublicPort = 8080;
const nodeEntry = resolve(args['node-entry'] ?? paymentNodeEntry);
const infoFileArg = args['info-file'] ? resolve(args['info-file']) : undefined;

interface Ports {
  public: number;
  internal: number;
  postgres: number;
  kafkaBroker: number;
  kafkaController: number;
  psp: number;
  /** Issue #16: the second sandbox PSP (nimbus-psp/). */
  nimbus: number;
  reconciler: number;
  reporting: number;
  notifier: number;
  admin: number;
  prometheus: number;
  /** The console service (127.0.0.1) and nginx's console listener (TLS). */
  console: number;
  consoleListener: number;
  nodes: { id: string; admin: number }[];
  processors: { id: string; admin: number }[];
}

/** A persistent dir reuses its recorded ports (stable ring); new ones are picked at random. */
async function choosePorts(dir: string | null): Promise<Ports> {
  const file = dir ? join(dir, 'ports.json') : null;
  const recorded: Partial<Ports> = file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<Ports>) : {};
  const used = new Set<number>();
  const take = async (want: number | undefined): Promise<number> => {
    const port = want ?? (await pickFreePort(used));
    used.add(port);
    return port;
  };
  const ports: Ports = {
    public: await take(explicitPublicPort ?? (ephemeral ? undefined : defaultPublicPort)),
    internal: await take(recorded.internal),
    postgres: await take(recorded.postgres),
    kafkaBroker: await take(recorded.kafkaBroker),
    kafkaController: await take(recorded.kafkaController),
    psp: await take(recorded.psp),
    nimbus: await take(recorded.nimbus),
    reconciler: await take(recorded.reconciler),
    reporting: await take(recorded.reporting),
    notifier: await take(recorded.notifier),
    admin: await take(recorded.admin),
    prometheus: await take(recorded.prometheus),
    console: await take(recorded.console),
    consoleListener: await take(recorded.consoleListener),
    nodes: [],
    processors: [],
  };
  const recordedNodes = recorded.nodes ?? [];
  if (recordedNodes.length > 0 && recordedNodes.length !== nodeCount) {
    say('stack', `WARNING: ${dir} was last run with ${recordedNodes.length} nodes, now ${nodeCount}: the hash ring changes and keys move between nodes`);
  }
  for (let i = 0; i < nodeCount; i++) {
    const prev = recordedNodes[i];
    ports.nodes.push({ id: nodeId(i), admin: await take(prev?.admin) });
  }
  for (let i = 0; i < processorCount; i++) {
    ports.processors.push({ id: `p${i + 1}`, admin: await take(recorded.processors?.[i]?.admin) });
  }
  const all = [ports.public, ports.internal, ports.postgres, ports.kafkaBroker, ports.kafkaController, ports.psp, ports.nimbus, ports.reconciler, ports.reporting, ports.notifier, ports.admin, ports.prometheus, ports.console, ports.consoleListener,
    ...ports.nodes.map((n) => n.admin), ...ports.processors.map((p) => p.admin)];
  for (const port of all) {
    if (!(await isPortFree(port))) {
      throw new Error(`port ${port} on 127.0.0.1 is in use (another stack on this dir? something on --port?). Ports of ${dir ?? 'this stack'}: ${file ?? ''}`);
    }
  }
  if (file) writeFileSync(file, JSON.stringify(ports, null, 2) + '\n');
  return ports;
}

/** A live (not zombie) stack runner process with this pid. */
function isLiveRunner(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('stack.ts');
  } catch {
    return false;
  }
}

/** One runner per persistent dir. */
function acquireLock(dir: string): () => void {
  const lock = join(dir, 'runner.pid');
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    const alive = pid > 0 && isLiveRunner(pid);
    if (alive && pid !== process.pid) throw new Error(`another stack runner (pid ${pid}) is using ${dir}`);
    // The last runner died without cleaning up (SIGKILL): kill what it left (nginx workers).
    const reaped = reapStaleGroups(join(dir, 'children.pgids'));
    if (reaped.length > 0) say('stack', `killed ${reaped.length} processes left by a dead runner (pid ${pid}): ${reaped.join(' ')}`);
  }
  writeFileSync(lock, `${process.pid}\n`, { mode: 0o600 });
  return () => rmSync(lock, { force: true });
}

/** Writes a file only its owner can read (a new temp file, so the mode holds), atomically. */
function writeSecretFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The info file holds every secret of the stack: 0600. */
function writeJsonAtomic(path: string, value: unknown): void {
  writeSecretFile(path, JSON.stringify(value, null, 2) + '\n');
}

interface Managed {
  handle: ServiceHandle;
  /** Stop order: lower phases stop first (app processes, then nginx, kafka, postgres). */
  stopPhase: number;
}

const services = new Map<string, Managed>();
const cleanups: (() => void)[] = [];
let control: ControlServer | undefined;
let shuttingDown: Promise<void> | undefined;
let firstSignalAt = 0;

async function stopAll(): Promise<void> {
  if (control) await control.close().catch(() => {});
  const phases = [...new Set([...services.values()].map((s) => s.stopPhase))].sort((a, b) => a - b);
  for (const phase of phases) {
    const inPhase = [...services.values()].filter((s) => s.stopPhase === phase && s.handle.status().running && !s.handle.status().external);
    if (inPhase.length === 0) continue;
    say('stack', `stopping ${inPhase.map((s) => s.handle.name).join(', ')}`);
    const results = await Promise.allSettled(inPhase.map((s) => s.handle.stop()));
    results.forEach((r, i) => {
      if (r.status === 'rejected') say('stack', `stopping ${inPhase[i]?.handle.name} failed: ${errorMessage(r.reason)}`);
    });
  }
}

function shutdown(reason: string, exitCode: number): Promise<void> {
  if (shuttingDown) return shuttingDown;
  say('stack', `shutting down (${reason})`);
  shuttingDown = (async () => {
    try {
      await withTimeout('ordered shutdown', stopAll(), shutdownTimeoutMs);
    } catch (err) {
      say('stack', `${errorMessage(err)}; killing remaining processes`);
    }
    killAllManagedSync();
    for (const cleanup of cleanups.reverse()) {
      try {
        cleanup();
      } catch (err) {
        say('stack', `cleanup failed: ${errorMessage(err)}`);
      }
    }
    say('stack', 'stopped');
  })().finally(() => process.exit(exitCode));
  return shuttingDown;
}

function onSignal(signal: NodeJS.Signals): void {
  const now = Date.now();
  if (shuttingDown) {
    if (now - firstSignalAt >= repeatSignalForceAfterMs) {
      say('stack', `${signal} again: killing everything now`);
      killAllManagedSync();
      process.exit(130);
    }
    return;
  }
  firstSignalAt = now;
  void shutdown(signal, 0);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
// A closed terminal or pipe (EPIPE) must not turn every log line into an uncaught error: the
// runner keeps managing (and then stopping) its children without an audience.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});
process.on('uncaughtException', (err) => {
  say('stack', `uncaught error: ${err.stack ?? String(err)}`);
  void shutdown('uncaught error', 1);
});
process.on('unhandledRejection', (err) => {
  say('stack', `unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  void shutdown('unhandled rejection', 1);
});

async function main(): Promise<void> {
  const t0 = Date.now();
  // Run as root, no service runs as root: they run as this user (scripts/stack/service-user.ts).
  const user = serviceUser();
  if (!existsSync(nodeEntry)) {
    throw new Error(`payment node entry ${nodeEntry} does not exist (pass --node-entry to run another one)`);
  }

  // Stack dir.
  let dir: string;
  if (ephemeral) {
    // --ephemeral --dir X: use X (new or empty) instead of a temp dir; still removed at exit.
    if (args.dir) {
      dir = resolve(args.dir);
      mkdirSync(dir, { recursive: true });
      if (readdirSync(dir).length > 0) throw new Error(`--ephemeral --dir ${dir}: the dir must be new or empty (it is removed at exit)`);
    } else {
      dir = mkdtempSync(join(tmpdir(), 'ringpay-stack-'));
    }
    // When root, Postgres and the service user must pass through the dir to their own (0700)
    // dirs; nobody else may list it. Otherwise it is the runner's alone.
    chmodSync(dir, user ? sharedStackDirMode : privateDirMode);
    cleanups.push(() => {
      rmSync(dir, { recursive: true, force: true });
      say('stack', `removed ${dir}`);
    });
  } else {
    dir = resolve(args.dir ?? join(repoRoot, '.stack', 'local'));
    // Parents made here keep the default umask: the service users must pass through them.
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, user ? sharedStackDirMode : privateDirMode);
    cleanups.push(acquireLock(dir));
    guardCheckoutIdLayout(dir);
  }
  if (user) {
    for (const d of makePassable(repoRoot, user)) say('stack', `made ${d} passable (o+x) for the service user ${user.name}: it runs the code under it`);
    assertPassable(dir, user);
  }
  // From here on, everything the runner and its children create is theirs alone: files 0600,
  // dirs 0700 (logs, LevelDB, Kafka's and Postgres' data, secrets). Issue #17 part 7.
  process.umask(privateUmask);
  // Logs are written through descriptors the runner opens (root-owned when root; nginx's master
  // opens its own as root): owner only.
  const logsDir = ensurePrivateDir(dir, 'logs', null);
  // Issue #18: every service inherits the runner's environment, so this turns tracing on for all.
  const tracesDir = args.tracing === true ? ensurePrivateDir(dir, 'traces', user) : undefined;
  if (tracesDir !== undefined) {
    const pruned = pruneTraceFiles(tracesDir, tracingLimits.tracesDirBytesMax);
    if (pruned.length > 0) say('stack', `removed ${pruned.length} old trace files from ${tracesDir} (kept the newest ${tracingLimits.tracesDirBytesMax} bytes)`);
    process.env[tracingEnv] = '1';
    process.env[tracesDirEnv] = tracesDir;
    say('stack', `tracing on: span files in ${tracesDir} (node scripts/trace.ts --dir ${dir} <merchant_id> <checkout_id>)`);
  }
  // The key ring that seals sensitive fields at rest (lib/field-crypto.ts): outside every data
  // dir, made once per stack dir and kept (the data was sealed with it), 0600, readable by the
  // service user only (nodes and processors).
  const fieldKeysFile = join(ensurePrivateDir(dir, 'secrets', user), fieldKeysFileName);
  const activeFieldKeyId = ensureFieldKeysFile(fieldKeysFile, user);
  // Process groups of live children, for a wrapper that had to SIGKILL this runner.
  const childrenFile = join(dir, 'children.pgids');
  trackChildrenIn(childrenFile);
  cleanups.push(() => rmSync(childrenFile, { force: true }));

  const ports = await choosePorts(ephemeral ? null : dir);
  // The internal API: one token per calling service (processor, ops, audit), each given only to
  // its holder; nodes get the digests (RINGPAY_INTERNAL_SERVICES), nginx none (SECURITY.md).
  const internalTokens = newInternalTokens();
  // Dev surfaces are not open to anyone on the machine: the control API and the reconciler's
  // admin trigger each take a token made for this run (in the info file, and the control token
  // also in <dir>/control-token for a human with curl; both 0600).
  const controlToken = newAdminToken();
  const reconcilerAdminToken = newAdminToken();
  const controlTokenFile = join(dir, 'control-token');
  writeSecretFile(controlTokenFile, `${controlToken}\n`);
  cleanups.push(() => rmSync(controlTokenFile, { force: true }));
  // The sandbox PSP's credentials: our secret key at the PSP, and the secret its webhooks are signed with.
  const pspSecretKey = `sk_sandbox_${randomBytes(18).toString('base64url')}`;
  const webhookSecret = `whsec_${randomBytes(24).toString('base64url')}`;
  // Nimbus' (issue #16): its own API key and the HMAC key of its notification items.
  const nimbusApiKey = `nk_${randomBytes(18).toString('base64url')}`;
  const nimbusHmacKey = randomBytes(32).toString('base64url');
  // The merchants' API keys (digests only): in a dir of the service user's own, since the admin
  // service changes the file there (temp file and rename, a lock file, the audit log beside it).
  const apiKeysFile = join(ensurePrivateDir(dir, 'merchant-keys', user), 'api-keys.json');
  const legacyApiKeysFile = join(dir, 'api-keys.json');
  if (existsSync(legacyApiKeysFile) && !existsSync(apiKeysFile)) {
    renameSync(legacyApiKeysFile, apiKeysFile);
    say('stack', `moved ${legacyApiKeysFile} to ${apiKeysFile}`);
  }
  // The operators' token for the admin API: made once per stack dir, the runner's alone; the
  // admin service gets only its digest.
  const operatorTokenFile = join(dir, 'secrets', operatorTokenFileName);
  const operatorToken = ensureOperatorToken(operatorTokenFile);
  const keysFileState = ensureApiKeysFile(apiKeysFile, user);
  if (keysFileState === 'unreadable') say('stack', `WARNING: ${apiKeysFile} is not a valid keys file: every API key is refused until it is repaired`);

  // The stack's CA and its server certificates (internal hops encrypted, issue #17 part 3).
  const localCa = ensureLocalCa(join(dir, 'secrets'), user);
  // Postgres takes TCP connections over TLS only, with a certificate of the stack's CA.
  const postgresCert = localCa.serverCert('postgres', ['127.0.0.1']);
  const postgres: PostgresHandle = createPostgres({
    dir: join(dir, 'postgres'), port: ports.postgres, logFile: join(logsDir, 'postgres.log'),
    tls: { certFile: postgresCert.certFile, keyFile: postgresCert.keyFile, caFile: localCa.caFile },
  });
  // One login role per service (db/roles.ts), each with a password made for this run (set again
  // at every start, so a stack dir's old info file stops working). An external Postgres
  // (DATABASE_URL) is not ours to administer: every service then uses DATABASE_URL.
  const rolePasswords = { processor: newDatabasePassword(), reconciler: newDatabasePassword(), reporting: newDatabasePassword(), notifier: newDatabasePassword(), console: newDatabasePassword(), readonly: newDatabasePassword() };
  const roleUrl = (name: keyof typeof rolePasswords) =>
    postgres.external ? postgres.databaseUrl : urlWithCredentials(postgres.databaseUrl, serviceRoles[name].role, rolePasswords[name]);
  const databaseUrls = { processor: roleUrl('processor'), reconciler: roleUrl('reconciler'), reporting: roleUrl('reporting'), notifier: roleUrl('notifier'), console: roleUrl('console'), readonly: roleUrl('readonly') };
  const kafkaReplication = externalBrokersFromEnv() ? -1 : 1;
  // Kafka's principals (admin, relay, processor, dlq) and their passwords: made once per stack dir
  // with the broker's storage (SCRAM users are added at format time), next to the field keys.
  const kafkaUsers = ensureKafkaUsersFile(join(dir, 'secrets', kafkaUsersFileName), user);
  const kafkaCert = localCa.serverCert('kafka', ['127.0.0.1']);
  // The public listener serves TLS only (issue #17 part 3), with a certificate of the same CA.
  const nginxCert = localCa.serverCert('nginx', ['127.0.0.1']);
  const publicTls = { certFile: nginxCert.certFile, keyFile: nginxCert.keyFile, caFile: localCa.caFile };
  const publicUrl = `https://127.0.0.1:${ports.public}`;
  // The internal listener too (processors, operators, the admin API): each caller still brings its own token.
  const internalUrl = `https://127.0.0.1:${ports.internal}`;
  const kafka: KafkaHandle = createKafka({
    dir: ensurePrivateDir(dir, 'kafka', user),
    user,
    users: kafkaUsers,
    tls: { keyAndChainFile: kafkaCert.keyAndChainFile, caFile: localCa.caFile },
    brokerPort: ports.kafkaBroker,
    controllerPort: ports.kafkaController,
    logFile: join(logsDir, 'kafka.log'),
    topics: stackTopics(eventsPartitions, dlqPartitions, kafkaReplication),
  });
  const nodeSpecs: PaymentNodeSpec[] = ports.nodes.map((n) => ({
    id: n.id,
    publicSocket: nodePublicSocket(dir, n.id),
    adminPort: n.admin,
    dataDir: nodeDataDir(dir, n.id),
    logFile: join(logsDir, `${n.id}.log`),
  }));
  // Each node signs its change events with its own key (lib/event-signing.ts); the processors
  // verify them with the whole file. Made once per stack dir, next to the field keys.
  const eventKeysFile = join(dir, 'secrets', eventKeysFileName);
  const eventKeys = ensureEventKeysFile(eventKeysFile, nodeSpecs.map((n) => n.id), user);
  for (const spec of nodeSpecs) {
    spec.env = { ...spec.env, [eventSigningKeyEnv]: eventSigningKeySetting(eventKeys.get(spec.id)!) };
    ensurePrivateDir(dir, relative(dir, spec.dataDir), user);
    // A stack dir of an older run holds root-owned LevelDB files.
    chownTree(spec.dataDir, user);
  }
  // KAFKA_BROKERS turns on each node's CDC relay (cdc-relay/), publishing to the events topic.
  // The relays log in as `relay` (WRITE on the events topic only).
  const nodeEnv = {
    KAFKA_BROKERS: kafka.brokers.join(','), RINGPAY_EVENTS_TOPIC: eventsTopic, RINGPAY_WEBHOOK_SECRET_SANDBOX: webhookSecret,
    RINGPAY_WEBHOOK_SECRET_NIMBUS: nimbusHmacKey,
    RINGPAY_FIELD_KEYS_FILE: fieldKeysFile, ...kafkaSaslEnv(kafka.credentials.relay),
  };
  const nodes = createPaymentNodes({ nodes: nodeSpecs, apiKeysFile, internalServices: internalServicesSetting(internalTokens), entry: nodeEntry, env: nodeEnv, user });
  const nginx: NginxHandle = createNginx({
    dir: join(dir, 'nginx'),
    logsDir,
    logFile: join(logsDir, 'nginx.log'),
    publicPort: ports.public,
    internalPort: ports.internal,
    nodeServers: guardRing(ephemeral ? null : dir, nodeSpecs.map((n) => `unix:${n.publicSocket!}`)),
    reportingServer: `127.0.0.1:${ports.reporting}`,
    notifierServer: `127.0.0.1:${ports.notifier}`,
    adminServer: `127.0.0.1:${ports.admin}`,
    // The operators' console (console/) on a listener of its own, TLS with the same certificate.
    console: { server: `127.0.0.1:${ports.console}`, listenPort: ports.consoleListener, tls: publicTls },
    workerProcesses: nginxWorkers,
    // RINGPAY_NGINX_PER_IP_REQUESTS_PER_SECOND_MAX etc.; the nodes take their own limits
    // (RINGPAY_FAILED_KEY_ATTEMPTS_MAX, …) from the same environment.
    abuseLimits: abuseLimitsFromEnv(process.env),
    workerUser: user,
    publicTls,
    internalTls: publicTls,
  });

  // Adding a component (CDC relay, processors, sandbox PSP, reconciler): build a ManagedProcess
  // (scripts/stack/proc.ts: command, env, log file under logsDir, readiness probe), register it
  // here with the phase it stops in (0 = with the nodes, before nginx/Kafka/Postgres), start it
  // after what it depends on, and add what tests need to StackInfo. The control API then serves
  // POST /services/<name>/(start|stop|kill|restart) for it with no further code.
  const psp = createSandboxPsp({
    port: ports.psp,
    dataDir: (() => {
      const pspDir = ensurePrivateDir(dir, 'psp', user);
      chownTree(pspDir, user);
      return pspDir;
    })(),
    user,
    logFile: join(logsDir, 'psp.log'),
    secretKey: pspSecretKey,
    webhookSecret,
    webhookBaseUrl: publicUrl,
    webhookCaFile: localCa.caFile,
  });
  // Issue #16: Nimbus, and the processors' routing (stackPspRouting: NOK and DKK to Nimbus, the
  // sandbox for the rest and as Nimbus' failover). RINGPAY_PSP_ROUTING_FILE in the runner's
  // environment replaces the file.
  const nimbus = createNimbusPsp({
    port: ports.nimbus,
    dataDir: (() => {
      const nimbusDir = ensurePrivateDir(dir, 'nimbus', user);
      chownTree(nimbusDir, user);
      return nimbusDir;
    })(),
    user,
    logFile: join(logsDir, 'nimbus.log'),
    apiKey: nimbusApiKey,
    hmacKey: nimbusHmacKey,
    notificationBaseUrl: publicUrl,
    notificationCaFile: localCa.caFile,
  });
  // In a dir of the service user's own: the stack dir is the runner's.
  const pspRoutingFile = process.env.RINGPAY_PSP_ROUTING_FILE ?? join(ensurePrivateDir(dir, 'psp-routing', user), 'psp-routing.json');
  if (process.env.RINGPAY_PSP_ROUTING_FILE === undefined) {
    writeFileSync(pspRoutingFile, JSON.stringify(stackPspRouting, null, 2) + '\n', { mode: 0o644 });
    chownTree(dirname(pspRoutingFile), user);
  }
  const processorPspEnv = {
    NIMBUS_BASE_URL: `http://127.0.0.1:${ports.nimbus}`,
    NIMBUS_API_KEY: nimbusApiKey,
    RINGPAY_PSP_ROUTING_FILE: pspRoutingFile,
  };
  const processors = new Map(ports.processors.map((p) => [p.id, createProcessor({
    env: processorPspEnv,
    id: p.id,
    adminPort: p.admin,
    logFile: join(logsDir, `${p.id}.log`),
    databaseUrl: databaseUrls.processor,
    kafkaBrokers: kafka.brokers,
    kafkaSasl: kafka.credentials.processor,
    internalUrl,
    internalCaFile: localCa.caFile,
    pspUrl: `http://127.0.0.1:${ports.psp}`,
    pspSecretKey,
    internalToken: internalTokens.processor,
    eventsTopic,
    dlqTopic,
    fieldKeysFile,
    eventKeysFile,
    user,
  })]));

  // The daily settlement reconciliation (reconciler/): Postgres and the PSP's reports.
  const reconciler = createReconciler({
    adminPort: ports.reconciler,
    logFile: join(logsDir, 'reconciler.log'),
    databaseUrl: databaseUrls.reconciler,
    pspUrl: `http://127.0.0.1:${ports.psp}`,
    pspSecretKey,
    adminToken: reconcilerAdminToken,
    // Issue #16: Nimbus' settlement report too.
    env: { NIMBUS_BASE_URL: `http://127.0.0.1:${ports.nimbus}`, NIMBUS_API_KEY: nimbusApiKey },
    user,
  });

  // A merchant's payments from Postgres (reporting/), behind the public nginx.
  const reporting = createReporting({
    port: ports.reporting,
    logFile: join(logsDir, 'reporting.log'),
    databaseUrl: databaseUrls.reporting,
    apiKeysFile,
    user,
  });

  // Merchants' outgoing webhooks (notifier/): its own consumer group on the events topic, its API
  // behind the public nginx. The local stack is dev mode: endpoints on loopback over http are
  // allowed (demo and test receivers on 127.0.0.1); retries and disabling are fast, so tests see
  // them in seconds. Each can be overridden from the runner's environment.
  const notifierEnv: Record<string, string> = {
    RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK: process.env.RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK ?? '1',
    NOTIFIER_RETRY_BASE_DELAY_MS: process.env.NOTIFIER_RETRY_BASE_DELAY_MS ?? '200',
    NOTIFIER_RETRY_DELAY_MS_MAX: process.env.NOTIFIER_RETRY_DELAY_MS_MAX ?? '2000',
    NOTIFIER_DISABLE_AFTER_FAILURES_MIN: process.env.NOTIFIER_DISABLE_AFTER_FAILURES_MIN ?? '5',
    NOTIFIER_DISABLE_AFTER_FAILING_MS: process.env.NOTIFIER_DISABLE_AFTER_FAILING_MS ?? '1000',
    NOTIFIER_DELIVERY_TIMEOUT_MS: process.env.NOTIFIER_DELIVERY_TIMEOUT_MS ?? '5000',
    NOTIFIER_LEASE_MS: process.env.NOTIFIER_LEASE_MS ?? '8000',
    ...(process.env.NOTIFIER_RETRY_WINDOW_MS ? { NOTIFIER_RETRY_WINDOW_MS: process.env.NOTIFIER_RETRY_WINDOW_MS } : {}),
  };
  const notifier = createNotifier({
    port: ports.notifier,
    logFile: join(logsDir, 'notifier.log'),
    databaseUrl: databaseUrls.notifier,
    kafkaBrokers: kafka.brokers,
    kafkaSasl: kafka.credentials.notifier,
    eventKeysFile,
    eventsTopic,
    apiKeysFile,
    fieldKeysFile,
    env: notifierEnv,
    user,
  });

  // The operators' admin API (admin/): merchants and API keys, behind nginx's internal listener only.
  const admin = createAdmin({
    port: ports.admin,
    logFile: join(logsDir, 'admin.log'),
    apiKeysFile,
    operators: stackOperatorsSetting(operatorToken),
    user,
  });

  // The operators' web console (console/, #18), behind nginx's console listener. It reads Postgres
  // as ringpay_console, the nodes as the `console` internal service, the DLQ as the `dlq` Kafka
  // principal; it reruns a day through the reconciler's admin trigger. Operators are made with
  // node console/cli.ts create-operator (README).
  const consoleService = createConsole({
    port: ports.console,
    logFile: join(logsDir, 'console.log'),
    databaseUrl: databaseUrls.console,
    internalUrl,
    internalCaFile: localCa.caFile,
    internalToken: internalTokens.console,
    pspUrl: `http://127.0.0.1:${ports.psp}`,
    pspSecretKey,
    kafkaBrokers: kafka.brokers,
    kafkaSasl: kafka.credentials.dlq,
    eventsTopic,
    dlqTopic,
    prometheusUrl: `http://127.0.0.1:${ports.prometheus}`,
    reconcilerUrl: `http://127.0.0.1:${ports.reconciler}`,
    reconcilerAdminToken,
    user,
  });

  // Monitoring (#18): every component's /metrics scraped, ops/prometheus/alerts.yml evaluated.
  const prometheusDir = ensurePrivateDir(dir, 'prometheus', user);
  chownTree(prometheusDir, user);
  const prometheus = createPrometheus({
    dir: prometheusDir,
    port: ports.prometheus,
    logFile: join(logsDir, 'prometheus.log'),
    user,
    jobs: {
      'payment-nodes': ports.nodes.map((n) => ({ instance: n.id, address: `127.0.0.1:${n.admin}` })),
      processors: ports.processors.map((p) => ({ instance: p.id, address: `127.0.0.1:${p.admin}` })),
      reconciler: [{ instance: 'reconciler', address: `127.0.0.1:${ports.reconciler}` }],
      reporting: [{ instance: 'reporting', address: `127.0.0.1:${ports.reporting}` }],
      notifier: [{ instance: 'notifier', address: `127.0.0.1:${ports.notifier}` }],
      admin: [{ instance: 'admin', address: `127.0.0.1:${ports.admin}` }],
      console: [{ instance: 'console', address: `127.0.0.1:${ports.console}` }],
    },
  });

  services.set('postgres', { handle: postgres, stopPhase: 3 });
  services.set('prometheus', { handle: prometheus, stopPhase: 0 });
  services.set('reporting', { handle: reporting, stopPhase: 0 });
  services.set('notifier', { handle: notifier, stopPhase: 0 });
  services.set('admin', { handle: admin, stopPhase: 0 });
  services.set('console', { handle: consoleService, stopPhase: 0 });
  services.set('reconciler', { handle: reconciler, stopPhase: 0 });
  services.set('psp', { handle: psp, stopPhase: 1 });
  services.set('nimbus', { handle: nimbus, stopPhase: 1 });
  for (const [id, proc] of processors) services.set(id, { handle: proc, stopPhase: 0 });
  services.set('kafka', { handle: kafka, stopPhase: 2 });
  services.set('nginx', { handle: nginx, stopPhase: 1 });
  for (const [id, proc] of nodes) services.set(id, { handle: proc, stopPhase: 0 });

  // Postgres, Kafka and the nodes are independent: start them together, then nginx.
  const timed = async (name: string, start: () => Promise<void>) => {
    const t = Date.now();
    await start();
    say('stack', `${name} ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  };
  say('stack', `starting in ${dir} (${nodeCount} nodes)`);
  const results = await Promise.allSettled([
    timed(postgres.external ? 'postgres (external) + migrations' : 'postgres + migrations', async () => {
      await postgres.start();
      const result = await migrate(postgres.databaseUrl);
      if (result.applied.length > 0) say('stack', `migrations applied: ${result.applied.join(', ')}`);
      // After the migrations: the grants name their tables.
      if (!postgres.external) await applyServiceRoles(postgres.databaseUrl, databaseName, rolePasswords);
    }),
    timed('psp', () => psp.start()),
    timed('nimbus', () => nimbus.start()),
    timed(kafka.external ? 'kafka (external) + topics' : 'kafka + topics', () => kafka.start()),
    ...[...nodes.values()].map((n) => timed(n.name, () => n.start())),
  ]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
  if (failures.length > 0) throw new Error(`stack failed to start:\n- ${failures.join('\n- ')}`);
  await timed('nginx', () => nginx.start());
  // Processors last: they consume Kafka, write Postgres and call the nodes through nginx.
  await Promise.all([...processors.values()].map((p) => timed(p.name, () => p.start())));
  await Promise.all([timed('reconciler', () => reconciler.start()), timed('reporting', () => reporting.start()), timed('notifier', () => notifier.start()), timed('admin', () => admin.start()), timed('prometheus', () => prometheus.start()),
    timed('console', () => consoleService.start())]);

  const startedAt = new Date().toISOString();
  let info: StackInfo;
  control = await startControlServer(
    {
      services: () => new Map([...services].map(([name, s]) => [name, s.handle])),
      nodeIds: () => [...nodes.keys()],
      info: () => info,
      reloadNginx: () => nginx.reload(),
    },
    { port: await pickFreePort(liveManagedPids()), token: controlToken },
  );

  info = {
    publicUrl,
    publicCaFile: localCa.caFile,
    publicTls,
    internalUrl,
    controlUrl: control.url,
    controlToken,
    databaseUrl: postgres.databaseUrl,
    databaseUrls,
    kafkaBrokers: kafka.brokers,
    kafkaCredentials: kafka.credentials,
    nodes: nodeSpecs.map((n) => ({ id: n.id, publicSocket: n.publicSocket!, adminPort: n.adminPort, dataDir: n.dataDir, logFile: n.logFile })),
    psp: { url: `http://127.0.0.1:${ports.psp}`, secretKey: pspSecretKey, webhookSecret, logFile: join(logsDir, 'psp.log') },
    nimbus: { url: `http://127.0.0.1:${ports.nimbus}`, apiKey: nimbusApiKey, hmacKey: nimbusHmacKey, logFile: join(logsDir, 'nimbus.log'), routingFile: pspRoutingFile },
    processors: ports.processors.map((p) => ({ id: p.id, adminPort: p.admin, logFile: join(logsDir, `${p.id}.log`) })),
    reconciler: { adminPort: ports.reconciler, logFile: join(logsDir, 'reconciler.log'), adminToken: reconcilerAdminToken },
    reporting: { port: ports.reporting, logFile: join(logsDir, 'reporting.log') },
    notifier: { port: ports.notifier, logFile: join(logsDir, 'notifier.log'), devAllowLoopback: notifierEnv.RINGPAY_NOTIFIER_DEV_ALLOW_LOOPBACK === '1' },
    prometheus: { url: `http://127.0.0.1:${ports.prometheus}`, logFile: join(logsDir, 'prometheus.log') },
    ...(tracesDir !== undefined ? { tracesDir } : {}),
    admin: { url: `${internalUrl}/admin`, port: ports.admin, logFile: join(logsDir, 'admin.log'), operator: stackOperatorName, operatorToken, operatorTokenFile },
    console: { url: `https://127.0.0.1:${ports.consoleListener}`, port: ports.console, logFile: join(logsDir, 'console.log') },
    apiKeysFile,
    apiKeys: { merchant_demo: demoApiKey, merchant_other: otherApiKey, merchant_demo_read: demoReadApiKey },
    internalTokens,
    fieldKeysFile,
    eventKeysFile,
    serviceUser: user,
    dir,
    topics: { events: eventsTopic, eventsPartitions, dlq: dlqTopic, dlqPartitions },
    postgres: { external: postgres.external, dataDir: postgres.dataDir, logFile: postgres.logFile },
    kafka: { external: kafka.external, dir: kafka.dir, logFile: kafka.logFile, serverLog: kafka.serverLog },
    nginx: { configFile: nginx.configFile, accessLog: nginx.accessLog, errorLog: nginx.errorLog, logFile: nginx.logFile, publicPort: ports.public, internalPort: ports.internal },
    pid: process.pid,
    startedAt,
  };
  const infoFiles = [join(dir, 'info.json'), ...(infoFileArg ? [infoFileArg] : [])];
  for (const file of infoFiles) {
    writeJsonAtomic(file, info);
    cleanups.push(() => rmSync(file, { force: true }));
  }

  const seconds = ((Date.now() - t0) / 1000).toFixed(1);
  const lines = [
    '',
    `Ringpay stack ready in ${seconds} s${ephemeral ? ' (ephemeral: removed at exit)' : ''}`,
    `  public API    ${info.publicUrl}   (nginx; routes by X-PAYMENT-CHECKOUT-ID)`,
    `  internal API  ${info.internalUrl}   (nginx; /internal/ with the caller's own X-Ringpay-Internal-Token, e.g. info file internalTokens.ops)`,
    `  control API   ${info.controlUrl}   (POST /nodes/n1/kill|stop|start, /kafka/stop|start, /postgres/stop|start, /nginx/reload; GET /info; Authorization: Bearer $(cat ${controlTokenFile}))`,
    `  postgres      ${redactDatabaseUrl(info.databaseUrl)}${postgres.external ? '   (external: DATABASE_URL)' : '   (SCRAM; admin and per-service URLs with passwords in the info file)'}`,
    `  kafka         ${info.kafkaBrokers.join(',')}${kafka.external ? '   (external: KAFKA_BROKERS)' : ''}   topics ${eventsTopic}(${eventsPartitions}) ${dlqTopic}(${dlqPartitions})`,
    ...info.nodes.map((n) => `  node ${n.id.padEnd(8)} public ${n.publicSocket}  admin http://127.0.0.1:${n.adminPort}  data ${n.dataDir}`),
    `  sandbox PSP   ${info.psp.url}   (admin: GET /admin/stats, PUT /admin/config)`,
    `  nimbus PSP    ${info.nimbus!.url}   (X-API-Key; admin: GET /admin/stats, PUT /admin/config; routing ${pspRoutingFile})`,
    ...info.processors.map((p) => `  processor ${p.id.padEnd(3)} metrics http://127.0.0.1:${p.adminPort}/metrics`),
    `  reconciler    metrics http://127.0.0.1:${ports.reconciler}/metrics   (daily at RECONCILER_DAILY_AT, default 02:00 UTC; node reconciler/cli.ts for finance)`,
    `  reporting     GET ${info.publicUrl}/payments, /reports/payments.csv   (through nginx; metrics http://127.0.0.1:${ports.reporting}/metrics)`,
    `  notifier      ${info.publicUrl}/webhook_endpoints, /events   (merchant webhooks, through nginx; metrics http://127.0.0.1:${ports.notifier}/metrics${info.notifier?.devAllowLoopback ? '; dev mode: loopback endpoints allowed' : ''})`,
    `  admin         ${info.internalUrl}/admin/merchants, /admin/keys/…   (operators: merchants and API keys; internal listener only; Authorization: Bearer $(cat ${operatorTokenFile}))`,
    `  console       ${info.console!.url}   (operators' web console; create an operator: node console/cli.ts create-operator --name NAME --role operator, DATABASE_URL from the info file's databaseUrls.console)`,
    `  prometheus    http://127.0.0.1:${ports.prometheus}   (alerts: /alerts; rules ops/prometheus/alerts.yml)`,
    `  dir           ${dir}`,
    `  logs          ${logsDir}/{${[...nodes.keys()].join(',')},postgres,kafka,nginx,nginx-access,nginx-error}.log${kafka.serverLog ? `, ${kafka.serverLog}` : ''}`,
    `  info file     ${infoFiles.join(', ')}`,
    `  test API key  ${demoMerchantId}: ${testApiKeys[demoMerchantId]}`,
    '',
    `Try: curl -s --cacert ${info.publicCaFile} -H 'X-PAYMENT-CHECKOUT-ID: co_1' -H 'Authorization: Bearer ${demoApiKey}' ${info.publicUrl}/payments/co_1`,
    'Press Ctrl-C to stop.',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  say('stack', errorMessage(err));
  void shutdown('startup failed', 1);
});
