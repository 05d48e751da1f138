// nginx in front of the payment nodes: renders the config and runs nginx in the foreground.
//
// Routing contract (see renderNginxConf):
//  - `$checkout_key` = the X-PAYMENT-CHECKOUT-ID header, else the checkout id in the path of
//    `/payments/{id}` or `/webhooks/psp/{provider}/{checkout_id}`; no key → 400 problem+json.
//  - ONE upstream `payment_nodes` with `hash $checkout_key consistent`, every server
//    max_fails=0 (never marked failed, so a key is never re-routed) and
//    `proxy_next_upstream off` (a request is never re-sent to another node). A dead node's
//    keys get 503 `node_unavailable`; every other key keeps working.
//  - The internal server proxies `/internal/` to the SAME upstream (nginx's ketama ring is
//    computed from the server address strings, so only the same server list guarantees the
//    same key → node mapping). It passes the caller's own internal credential header through
//    unchanged and never adds one (nginx holds no internal secret): the node checks who is
//    calling end to end (SECURITY.md, #17 part 2). The public server strips that header.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess, type ServiceHandle, type ServiceStatus } from './proc.ts';
import { findExecutable, pollUntil, say } from './util.ts';

export const nginxReadyTimeoutMs = 15_000;
export const nginxPollIntervalMs = 100;
export const nginxProbeTimeoutMs = 2_000;
export const nginxStopTimeoutMs = 10_000;
export const nginxConfigTestTimeoutMs = 10_000;
export const defaultWorkerProcesses = 1;
// Each proxied request holds two connections (client, upstream) and the upstream keepalive pools
// keep up to upstreamKeepaliveConnections idle ones per upstream.
export const defaultWorkerConnections = 16_384;
/**
 * Idle upstream connections kept per upstream (per worker). Long-polls hold an upstream
 * connection for their whole wait, so at a few hundred payments/s with long-polling clients the
 * connections in use came near the former 512 and nginx closed and reopened connections to the
 * nodes (node profile: connection set-up ~1 % of its busy time at 350 payments/s).
 */
export const upstreamKeepaliveConnections = 2048;
export const defaultWorkerRlimitNofile = 65_536;
export const checkoutIdHeader = 'X-PAYMENT-CHECKOUT-ID';
/** The internal API's credential header (lib/internal-credentials.ts): passed through on the internal listener, stripped on public ones. */
export const internalTokenHeader = 'X-Ringpay-Internal-Token';

export interface NginxSite {
  listenPort: number;
  upstreamName: string;
  /** host:port */
  servers: string[];
}

export interface NginxConfOptions {
  /** nginx prefix dir: config, pid, temp dirs. */
  dir: string;
  host?: string;
  publicPort: number;
  internalPort: number;
  /** host:port of each payment node's public listener, in node order. */
  nodeServers: string[];
  accessLog: string;
  errorLog: string;
  workerProcesses?: number;
  workerConnections?: number;
  workerRlimitNofile?: number;
  /** Emit `user root;` (workers must be able to use the root-owned stack dir). */
  runAsRoot?: boolean;
  /** More upstream/server pairs with the same proxy settings (e.g. a bench target). */
  extraSites?: NginxSite[];
}

// What the access log masks (nginx has no Luhn, so it over-masks): 13 digit-like characters,
// each two joined by at most 3 ASCII characters other than letters, digits and `_`. Digit-like
// is an ASCII digit or any byte of a non-ASCII character (full-width and other Unicode digits,
// Unicode spaces and dashes): a superset of what the node reads as a card number
// (lib/card-numbers.ts: NFKC, separators, at most separatorRunMax in a row).
export const cardRunRegex = '[0-9\\x80-\\xff](?:[^0-9A-Za-z_\\x80-\\xff]{0,3}[0-9\\x80-\\xff]){12}';
/** Replaces the logged URI or checkout key from the first card-like run on. */
export const maskedMark = '[masked]';

const problem = (status: number, title: string, code: string): string =>
  JSON.stringify({ type: 'about:blank', title, status, code });

const upstreamNameRe = /^[A-Za-z_][A-Za-z0-9_]*$/;
const serverRe = /^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;

function upstreamBlock(name: string, servers: string[]): string {
  if (!upstreamNameRe.test(name)) throw new Error(`bad upstream name ${JSON.stringify(name)}`);
  if (servers.length === 0) throw new Error(`upstream ${name} has no servers`);
  for (const s of servers) if (!serverRe.test(s)) throw new Error(`bad upstream server ${JSON.stringify(s)}`);
  return `
  upstream ${name} {
    hash $checkout_key consistent;
${servers.map((s) => `    server ${s} max_fails=0;`).join('\n')}
    keepalive ${upstreamKeepaliveConnections};
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
`;
}

/**
 * Proxy directives shared by every proxied location (repeated per location: proxy_set_header does
 * not merge). `credential`: 'strip' on public servers (a public caller never hands a node an
 * internal credential), 'pass' on the internal listener (the caller's own, unchanged; nginx adds none).
 */
function proxyDirectives(upstream: string, credential: 'strip' | 'pass'): string {
  return `
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;${credential === 'strip' ? `
      proxy_set_header ${internalTokenHeader} "";` : ''}
      proxy_next_upstream off;
      proxy_next_upstream_tries 1;
      proxy_intercept_errors off;
      proxy_connect_timeout 1s;
      proxy_send_timeout 10s;
      proxy_read_timeout 35s;`;
}

/** Named error locations + the keyless 400, shared by every server. */
function errorLocations(): string {
  return `
    error_page 502 503 = @node_unavailable;
    error_page 504 = @node_timeout;
    error_page 413 = @body_too_large;

    location @node_unavailable {
      default_type application/problem+json;
      add_header Retry-After 1 always;
      return 503 '${problem(503, 'Payment node unavailable', 'node_unavailable')}';
    }
    location @node_timeout {
      default_type application/problem+json;
      return 504 '${problem(504, 'Payment node timed out', 'node_timeout')}';
    }
    location @body_too_large {
      default_type application/problem+json;
      return 413 '${problem(413, 'Request body too large', 'body_too_large')}';
    }`;
}

const missingKey = `
        return 400 '${problem(400, 'Missing checkout id', 'checkout_id_missing')}';`;

// A header nginx would hash byte for byte but the node would read differently (Node's parser
// trims a leading/trailing TAB) could land the payment on a node that does not own its id: only
// well-formed ids are routed; anything else is refused here, as the node would refuse it.
const invalidKey = `
        return 400 '${problem(400, 'Invalid checkout id', 'checkout_id_invalid')}';`;

const notFound = `
      default_type application/problem+json;
      return 404 '${problem(404, 'Not found', 'not_found')}';`;

function publicServer(host: string, port: number, upstream: string, accessLog: string, errorLog: string): string {
  return `
  server {
    listen ${host}:${port};
    access_log ${accessLog} ringpay_json;
    # nginx's error messages quote the request line, and anyone can put a card number in a public
    # path (GET /payments/<card number>): the node refuses it, but when the node is down nginx
    # writes "request: GET /payments/4111…" at level error. Only crit and worse are logged for
    # public requests; a failed upstream still shows in the access log ($upstream_status).
    error_log ${errorLog} crit;
${errorLocations()}

    location /internal/ {${notFound}
    }

    location / {
      # Only for nginx's own answers (the 400 below); proxied responses keep their type.
      default_type application/problem+json;
      if ($checkout_header_invalid) {${invalidKey}
      }
      if ($checkout_key = "") {${missingKey}
      }${proxyDirectives(upstream, 'strip')}
    }
  }
`;
}

export function renderNginxConf(o: NginxConfOptions): string {
  const host = o.host ?? '127.0.0.1';
  const temp = (name: string) => join(o.dir, 'temp', name);
  const extra = o.extraSites ?? [];
  return `# Generated by scripts/stack/nginx.ts — do not edit; re-rendered on every stack start/reload.
${o.runAsRoot ? 'user root;\n' : ''}worker_processes ${o.workerProcesses ?? defaultWorkerProcesses};
worker_rlimit_nofile ${o.workerRlimitNofile ?? defaultWorkerRlimitNofile};
pid ${join(o.dir, 'nginx.pid')};
error_log ${o.errorLog} warn;

events {
  worker_connections ${o.workerConnections ?? defaultWorkerConnections};
}

http {
  default_type application/octet-stream;
  server_tokens off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 100000;
  client_max_body_size 16k;
  client_body_buffer_size 16k;
  client_header_timeout 10s;
  client_body_timeout 10s;
  send_timeout 10s;

  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};

  # The URI and the checkout key are logged masked where they could hold a card number:
  # nginx cannot check Luhn, so any run of 13 digit-like characters is masked (see cardRunRegex).
  map $uri $uri_logged {
    default $uri;
    "~(?s)^(?<uri_before_card>.*?)${cardRunRegex}" "\${uri_before_card}${maskedMark}";
  }
  map $checkout_key $checkout_key_logged {
    default $checkout_key;
    "~(?s)^(?<key_before_card>.*?)${cardRunRegex}" "\${key_before_card}${maskedMark}";
  }
  log_format ringpay_json escape=json '{"time":"$time_iso8601","request_id":"$request_id",'
    '"remote_addr":"$remote_addr","method":"$request_method","uri":"$uri_logged","status":$status,'
    '"checkout_key":"$checkout_key_logged","upstream_addr":"$upstream_addr",'
    '"upstream_status":"$upstream_status","request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time","body_bytes_sent":$body_bytes_sent}';
  access_log ${o.accessLog} ringpay_json;

  # The routing key: the header, else the checkout id in the path.
  map $uri $checkout_key_from_path {
    default "";
    "~^/payments/([^/]+)/?$" $1;
    "~^/webhooks/psp/[^/]+/([^/]+)/?$" $1;
  }
  map $http_x_payment_checkout_id $checkout_key {
    "" $checkout_key_from_path;
    default $http_x_payment_checkout_id;
  }
  # 1 for a header that is present and not 1-64 of [A-Za-z0-9_-] (the API's checkout id).
  map $http_x_payment_checkout_id $checkout_header_invalid {
    "" 0;
    "~^[A-Za-z0-9_-]{1,64}$" 0;
    default 1;
  }
${upstreamBlock('payment_nodes', o.nodeServers)}${extra.map((s) => upstreamBlock(s.upstreamName, s.servers)).join('')}
  # Public API.
${publicServer(host, o.publicPort, 'payment_nodes', o.accessLog, o.errorLog)}
  # Internal API for processors, operators and checkers: same upstream (same ring). Each caller's
  # own credential header goes through unchanged; nginx adds none, the node checks it.
  server {
    listen ${host}:${o.internalPort};
    access_log ${o.accessLog} ringpay_json;
${errorLocations()}

    location /internal/ {
      default_type application/problem+json;
      # Batched transitions (POST /internal/transitions) carry up to 256 items: the node's
      # transitionBatchBodyBytesMax. Routed by the first item's checkout id, like any call.
      client_max_body_size 256k;
      client_body_buffer_size 256k;
      if ($checkout_header_invalid) {${invalidKey}
      }
      if ($checkout_key = "") {${missingKey}
      }${proxyDirectives('payment_nodes', 'pass')}
    }

    location / {${notFound}
    }
  }
${extra.map((s) => `\n  # Extra site: ${s.upstreamName}.\n${publicServer(host, s.listenPort, s.upstreamName, o.accessLog, o.errorLog)}`).join('')}}
`;
}

/** The hard RLIMIT_NOFILE: worker_rlimit_nofile above it makes workers log a setrlimit alert. */
function hardNofileLimit(): number | undefined {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

export function findNginx(): string {
  const bin = findExecutable('nginx');
  if (!bin) throw new Error('nginx not found: run scripts/ensure-deps.sh (installs Debian package nginx)');
  return bin;
}

export interface NginxOptions extends Omit<NginxConfOptions, 'accessLog' | 'errorLog' | 'runAsRoot'> {
  /** nginx's own stdout/stderr. */
  logFile: string;
  logsDir: string;
}

export interface NginxHandle extends ServiceHandle {
  readonly configFile: string;
  readonly accessLog: string;
  readonly errorLog: string;
  readonly logFile: string;
  reload(): Promise<void>;
}

/** One probe: a keyless request must get nginx's own 400 checkout_id_missing. */
async function probe(port: number, host: string): Promise<true> {
  const res = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(nginxProbeTimeoutMs) });
  const body = await res.text();
  if (res.status !== 400 || !body.includes('checkout_id_missing')) throw new Error(`unexpected probe answer ${res.status}`);
  return true;
}

class Nginx implements NginxHandle {
  readonly name = 'nginx';
  readonly configFile: string;
  readonly accessLog: string;
  readonly errorLog: string;
  readonly logFile: string;
  readonly #bin: string;
  readonly #opts: NginxOptions;
  readonly #proc: ManagedProcess;

  constructor(opts: NginxOptions) {
    this.#opts = opts;
    this.#bin = findNginx();
    this.configFile = join(opts.dir, 'nginx.conf');
    this.accessLog = join(opts.logsDir, 'nginx-access.log');
    this.errorLog = join(opts.logsDir, 'nginx-error.log');
    this.logFile = opts.logFile;
    const host = opts.host ?? '127.0.0.1';
    this.#proc = new ManagedProcess({
      name: 'nginx',
      command: this.#bin,
      args: ['-p', opts.dir, '-e', this.errorLog, '-c', this.configFile, '-g', 'daemon off; master_process on;'],
      logFile: opts.logFile,
      stopSignal: 'SIGTERM',
      stopTimeoutMs: nginxStopTimeoutMs,
      readyTimeoutMs: nginxReadyTimeoutMs,
      ready: ({ signal }) =>
        pollUntil('nginx', () => probe(opts.publicPort, host), { timeoutMs: nginxReadyTimeoutMs, intervalMs: nginxPollIntervalMs, signal }).then(() => {}),
    });
  }

  /** Renders the config and checks it with `nginx -t`. */
  #writeConfig(): void {
    const o = this.#opts;
    for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(o.dir, 'temp', d), { recursive: true });
    mkdirSync(o.logsDir, { recursive: true });
    const hard = hardNofileLimit();
    const isRoot = process.getuid?.() === 0;
    const wanted = o.workerRlimitNofile ?? defaultWorkerRlimitNofile;
    const conf = renderNginxConf({
      ...o,
      accessLog: this.accessLog,
      errorLog: this.errorLog,
      runAsRoot: isRoot,
      // Even root cannot raise the hard limit without CAP_SYS_RESOURCE (containers).
      workerRlimitNofile: hard !== undefined ? Math.min(wanted, hard) : wanted,
    });
    // No secret in it (nginx holds no internal credential), but nobody else needs to read it.
    writeFileSync(this.configFile, conf, { mode: 0o600 });
    const test = spawnSync(this.#bin, ['-t', '-q', '-p', o.dir, '-e', this.errorLog, '-c', this.configFile], {
      encoding: 'utf8',
      timeout: nginxConfigTestTimeoutMs,
    });
    if (test.status !== 0) {
      throw new Error(`nginx -t rejected ${this.configFile}:\n${test.stderr}${test.stdout}`);
    }
  }

  async start(): Promise<void> {
    this.#writeConfig();
    await this.#proc.start();
  }

  async stop(): Promise<void> {
    await this.#proc.stop();
  }

  async kill(): Promise<void> {
    await this.#proc.kill();
  }

  /** Re-renders the config, checks it, SIGHUPs the master, waits until it answers again. */
  async reload(): Promise<void> {
    const pid = this.#proc.pid;
    if (pid === null) throw new Error('nginx is not running');
    this.#writeConfig();
    process.kill(pid, 'SIGHUP');
    say('nginx', 'reload signalled');
    const host = this.#opts.host ?? '127.0.0.1';
    await pollUntil('nginx after reload', () => probe(this.#opts.publicPort, host), { timeoutMs: nginxReadyTimeoutMs, intervalMs: nginxPollIntervalMs });
  }

  status(): ServiceStatus {
    return this.#proc.status();
  }
}

export function createNginx(opts: NginxOptions): NginxHandle {
  return new Nginx(opts);
}

export async function startNginx(opts: NginxOptions): Promise<NginxHandle> {
  const handle = createNginx(opts);
  await handle.start();
  return handle;
}
