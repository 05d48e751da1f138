// The stack runner's control API (loopback only), for tests and the fault suite. Every call needs
// `Authorization: Bearer <token>`: the token is made per stack run, written to <stack dir>/control-token
// (0600) and to the info file (0600); anything else is 401 `control_unauthorized`. Loopback alone is
// no protection: any local user or process (a browser tab doing a DNS rebinding included) could
// otherwise read every secret of the stack and restart its nodes with its own environment.
//
//   GET  /info                          the stack info (same as the info file)
//   GET  /services                      status of every managed service
//   POST /services/:name/(start|stop|kill|restart)
//   POST /nodes/:id/(start|stop|kill|restart)     kill = SIGKILL, stop = SIGTERM and wait
//        start and restart take an optional JSON body {"env": {"RINGPAY_…": "…"}}: environment
//        overrides for this node from that start on (e.g. a tiny relay disk budget); a start or
//        restart without a body goes back to the node's own environment. Only the variables in
//        nodeEnvOverridesAllowed, with values of their shape, are taken (400 `env_override_refused`):
//        an override of the keys file, the data dir, the internal service digests or NODE_OPTIONS would
//        hand the node to the caller.
//   POST /kafka/(start|stop|kill|restart)
//   POST /postgres/(start|stop|kill|restart)
//   POST /nginx/reload
//
// Operations run one at a time (a queue), each bounded by controlOperationTimeoutMs.
// Answers are JSON: {"ok":true,"service":{...status}} or a problem+json error.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authorizedBy, digestAdminToken } from '../../lib/admin-token.ts';
import { ManagedProcess, type ServiceHandle, type ServiceStatus } from './proc.ts';
import { errorMessage, say, withTimeout } from './util.ts';

export const controlOperationTimeoutMs = 180_000;
export const controlBodyMaxBytes = 16_384;

export type ServiceAction = 'start' | 'stop' | 'kill' | 'restart';
const actions: readonly ServiceAction[] = ['start', 'stop', 'kill', 'restart'];

export interface ControlTarget {
  /** All managed services by name (n1…, nginx, kafka, postgres, later relay/processors). */
  services(): ReadonlyMap<string, ServiceHandle>;
  /** Names that are payment nodes (for /nodes/:id). */
  nodeIds(): readonly string[];
  info(): unknown;
  reloadNginx(): Promise<void>;
}

/** Stable codes of the control API's problems. */
export type ControlProblemCode = 'control_unauthorized' | 'env_override_refused' | 'control_error' | 'control_failed';

class HttpError extends Error {
  readonly status: number;
  readonly code: ControlProblemCode;
  constructor(status: number, message: string, code: ControlProblemCode = 'control_error') {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > controlBodyMaxBytes) throw new HttpError(413, 'body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The node environment variables a start/restart may override, each with the shape of its value:
 * only what the tests and the fault suite use (grep `env:` in test/, faults/, bench/). Adding one
 * is a decision: it must not change who the node trusts or what it runs.
 */
export const nodeEnvOverridesAllowed: Readonly<Record<string, RegExp>> = {
  // faults/kinds.ts `relay-disk-budget`: a tiny relay disk budget, so the node sheds backlog_full.
  RINGPAY_RELAY_BACKLOG_EVENTS_MAX: /^[0-9]{1,12}$/,
};

function parseNodeEnvOverrides(body: string): Record<string, string> {
  if (body.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  const env = (parsed as { env?: unknown } | null)?.env ?? {};
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new HttpError(400, 'env must be an object');
  for (const [key, value] of Object.entries(env)) {
    const shape = Object.hasOwn(nodeEnvOverridesAllowed, key) ? nodeEnvOverridesAllowed[key] : undefined;
    if (shape === undefined) {
      throw new HttpError(400, `env ${JSON.stringify(key.slice(0, 64))} may not be overridden (allowed: ${Object.keys(nodeEnvOverridesAllowed).join(', ')})`, 'env_override_refused');
    }
    if (typeof value !== 'string' || !shape.test(value)) throw new HttpError(400, `env ${key} must be a string matching ${shape}`, 'env_override_refused');
  }
  return env as Record<string, string>;
}

async function runAction(service: ServiceHandle, action: ServiceAction): Promise<void> {
  switch (action) {
    case 'start':
      if (service.status().running) return;
      return service.start();
    case 'stop':
      return service.stop();
    case 'kill':
      return service.kill();
    case 'restart':
      await service.stop();
      return service.start();
  }
}

export interface ControlServer {
  url: string;
  close(): Promise<void>;
}

export async function startControlServer(target: ControlTarget, opts: { port: number; token: string; host?: string }): Promise<ControlServer> {
  const host = opts.host ?? '127.0.0.1';
  const tokenDigest = digestAdminToken(opts.token);
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(what: string, op: () => Promise<T>): Promise<T> => {
    const next = queue.then(() => withTimeout(what, op(), controlOperationTimeoutMs));
    queue = next.catch(() => {});
    return next;
  };

  const serviceAction = async (name: string, action: string): Promise<ServiceStatus> => {
    const service = target.services().get(name);
    if (!service) throw new HttpError(404, `no service ${JSON.stringify(name)}`);
    if (!actions.includes(action as ServiceAction)) throw new HttpError(404, `unknown action ${JSON.stringify(action)}`);
    if (service.status().external) throw new HttpError(409, `${name} is external; the stack does not manage it`);
    const started = Date.now();
    say('control', `${action} ${name}`);
    await serialized(`${action} ${name}`, () => runAction(service, action as ServiceAction));
    say('control', `${action} ${name} done in ${Date.now() - started} ms`);
    return service.status();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Before anything else, the body included: an unauthenticated caller learns nothing, not even which paths exist.
    if (!authorizedBy(req.headers.authorization, tokenDigest)) {
      req.resume();
      throw new HttpError(401, 'control token missing or wrong (Authorization: Bearer <stack dir>/control-token)', 'control_unauthorized');
    }
    const url = new URL(req.url ?? '/', 'http://control');
    const parts = url.pathname.split('/').filter(Boolean);
    const body = await readBody(req);
    if (req.method === 'GET') {
      if (url.pathname === '/info') return send(res, 200, target.info());
      if (url.pathname === '/services') {
        return send(res, 200, { services: [...target.services().values()].map((s) => s.status()) });
      }
      throw new HttpError(404, 'not found');
    }
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed');
    if (url.pathname === '/nginx/reload') {
      await serialized('nginx reload', () => target.reloadNginx());
      return send(res, 200, { ok: true, service: target.services().get('nginx')?.status() ?? null });
    }
    const [kind, a, b] = parts;
    if (parts.length === 3 && kind === 'nodes' && a !== undefined && b !== undefined) {
      if (!target.nodeIds().includes(a)) throw new HttpError(404, `no node ${JSON.stringify(a)}`);
      if (b === 'start' || b === 'restart') {
        const env = parseNodeEnvOverrides(body);
        const node = target.services().get(a);
        if (!(node instanceof ManagedProcess)) throw new HttpError(409, `${a} cannot take environment overrides`);
        node.setEnvOverrides(env);
      }
      return send(res, 200, { ok: true, service: await serviceAction(a, b) });
    }
    if (parts.length === 3 && kind === 'services' && a !== undefined && b !== undefined) {
      return send(res, 200, { ok: true, service: await serviceAction(a, b) });
    }
    if (parts.length === 2 && kind !== undefined && a !== undefined && kind !== 'nodes' && kind !== 'services') {
      return send(res, 200, { ok: true, service: await serviceAction(kind, a) });
    }
    throw new HttpError(404, 'not found');
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      const code: ControlProblemCode = err instanceof HttpError ? err.code : 'control_failed';
      if (status === 500) say('control', `${req.method} ${req.url} failed: ${errorMessage(err)}`);
      if (code === 'control_unauthorized') say('control', `refused ${req.method} ${new URL(req.url ?? '/', 'http://control').pathname}: no valid token`);
      if (!res.headersSent) {
        send(res, status, { type: 'about:blank', title: errorMessage(err), status, code }, 'application/problem+json');
      } else {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(opts.port, host, () => resolveListen());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
