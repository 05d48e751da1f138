// The N payment nodes: `node payment-svc/main.ts` with the pinned Node 24 binary, each with
// its own ports and LevelDB dir. Each node can be stopped, killed and restarted on the same
// ports and data dir (the ring in nginx is built from those ports, so they never change).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from './proc.ts';
import type { ServiceUser } from './service-user.ts';
import { pinnedNodeBinary, pollUntil, repoRoot } from './util.ts';

export const nodeReadyTimeoutMs = 60_000;
export const nodeReadyPollIntervalMs = 100;
export const nodeReadyProbeTimeoutMs = 2_000;
/** A node drains in-flight requests and long-polls on SIGTERM; then SIGKILL. */
export const nodeStopTimeoutMs = 40_000;
export const paymentNodeEntry = join(repoRoot, 'payment-svc', 'main.ts');

export interface PaymentNodeSpec {
  id: string;
  /** The public API on this TCP port (RINGPAY_PUBLIC_PORT), or on a Unix socket: exactly one. */
  publicPort?: number;
  /** RINGPAY_PUBLIC_SOCKET. */
  publicSocket?: string;
  adminPort: number;
  dataDir: string;
  logFile: string;
  /** Extra env for this node only. */
  env?: Record<string, string>;
}

export interface PaymentNodesOptions {
  nodes: PaymentNodeSpec[];
  apiKeysFile: string;
  /** RINGPAY_INTERNAL_SERVICES: each internal caller's token digest with its service (lib/internal-credentials.ts). */
  internalServices: string;
  host?: string;
  /** Extra env for every node. */
  env?: Record<string, string>;
  /** Defaults to payment-svc/main.ts. */
  entry?: string;
  /** Run the nodes as this user (the runner is root); their data dirs must be theirs. */
  user?: ServiceUser | null;
}

export function nodeId(index: number): string {
  return `n${index + 1}`;
}

async function readyz(host: string, adminPort: number): Promise<true | undefined> {
  const res = await fetch(`http://${host}:${adminPort}/readyz`, { signal: AbortSignal.timeout(nodeReadyProbeTimeoutMs) });
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`/readyz answered ${res.status}`);
  return true;
}

/** One managed process per node, keyed by node id. Not started. */
export function createPaymentNodes(opts: PaymentNodesOptions): Map<string, ManagedProcess> {
  const host = opts.host ?? '127.0.0.1';
  const node = pinnedNodeBinary();
  const entry = opts.entry ?? paymentNodeEntry;
  const nodes = new Map<string, ManagedProcess>();
  for (const spec of opts.nodes) {
    if ((spec.publicPort === undefined) === (spec.publicSocket === undefined)) throw new Error(`node ${spec.id}: give a public port or a public socket, not both or neither`);
    mkdirSync(spec.dataDir, { recursive: true });
    nodes.set(
      spec.id,
      new ManagedProcess({
        name: spec.id,
        command: node,
        args: [entry],
        cwd: repoRoot,
        env: {
          ...process.env,
          ...opts.env,
          ...spec.env,
          RINGPAY_NODE_ID: spec.id,
          RINGPAY_HOST: host,
          ...(spec.publicSocket === undefined ? { RINGPAY_PUBLIC_PORT: String(spec.publicPort) } : { RINGPAY_PUBLIC_SOCKET: spec.publicSocket }),
          RINGPAY_ADMIN_PORT: String(spec.adminPort),
          RINGPAY_DATA_DIR: spec.dataDir,
          RINGPAY_API_KEYS_FILE: opts.apiKeysFile,
          RINGPAY_INTERNAL_SERVICES: opts.internalServices,
        },
        logFile: spec.logFile,
        ...(opts.user ? { user: { uid: opts.user.uid, gid: opts.user.gid } } : {}),
        stopSignal: 'SIGTERM',
        stopTimeoutMs: nodeStopTimeoutMs,
        readyTimeoutMs: nodeReadyTimeoutMs,
        ready: ({ signal }) =>
          pollUntil(`${spec.id} /readyz`, () => readyz(host, spec.adminPort), { timeoutMs: nodeReadyTimeoutMs, intervalMs: nodeReadyPollIntervalMs, signal }).then(() => {}),
      }),
    );
  }
  return nodes;
}

/**
 * Where a node of the stack serves its public API: a Unix socket in its own private dir, so only
 * the service user (nginx's workers, the node) can connect, and the nginx → node hop skips loopback
 * TCP. nginx's consistent-hash ring is built from this path (stack.ts guards a persistent dir's ring).
 */
export function nodePublicSocket(stackDir: string, id: string): string {
  return join(stackDir, 'nodes', id, 'public.sock');
}

export function nodeDataDir(stackDir: string, id: string): string {
  return join(stackDir, 'nodes', id, 'data');
}
