// nginx in front of the payment nodes: renders the config and runs nginx in the foreground.
//
// Routing contract (see renderNginxConf):
//  - `$checkout_key` = the X-PAYMENT-CHECKOUT-ID header, else the checkout id in the path of
//    `/payments/{id}`, `/payments/{id}/cancel`, `/payments/{id}/capture`, `/payments/{id}/refunds`,
//    `/payments/{id}/refunds/{refund_id}` or `/webhooks/psp/{provider}/{checkout_id}`; no key
//    → 400 problem+json.
//  - ONE upstream `payment_nodes` with `hash $checkout_key consistent`, every server
//    max_fails=0 (never marked failed, so a key is never re-routed) and
//    `proxy_next_upstream off` (a request is never re-sent to another node). A dead node's
//    keys get 503 `node_unavailable`; every other key keeps working.
//  - Abuse limits (NginxAbuseLimits) apply to the public server(s) only: request rate per client
//    IP and per API key (limit_req), concurrent requests per client IP and in all (limit_conn),
//    each answered 429 `rate_limited` problem+json with Retry-After. The public total leaves
//    internalReservedConnections of worker_connections to the internal server.
//  - The internal server proxies `/internal/` to the SAME upstream (nginx's ketama ring is
//    computed from the server address strings, so only the same server list guarantees the
//    same key → node mapping). It passes the caller's own internal credential header through
//    unchanged and never adds one (nginx holds no internal secret): the node checks who is
//    calling end to end (SECURITY.md, #17 part 2). The public server strips that header.
//  - The operators' admin API (`/admin/`, admin/) is proxied on the internal listener only, with
//    the operator's own bearer token passed through (the admin service checks it); the public
//    server answers 404 for `/admin/` and `/admin`, whatever the request carries.
//  - The operators' web console (console/) has a listener of its own (TLS), proxying everything
//    to the console service but its probes and metrics (404); no internal credential is passed on.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { join } from 'node:path';
import { ManagedProcess, type ServiceHandle, type ServiceStatus } from './proc.ts';
import { ensurePrivateDir, privateDirMode, serviceUser, sharedStackDirMode, type ServiceUser } from './service-user.ts';
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

/**
 * nginx's abuse limits on the public server(s). Every client of the tests and benches is
 * 127.0.0.1, and a merchant's backend is one IP sending all its payments, so the per-IP and
 * per-key defaults are sized for the bench (e2e: ~2 requests per payment, up to 6,400
 * payments/s in a --search), not for an attacker: set them to your merchants' peaks
 * (RINGPAY_NGINX_* in scripts/stack.ts). Key guessing is capped by the node instead
 * (payment-svc/limits.ts failedKeyAttemptsMax), which sees whether a key was right.
 */
export interface NginxAbuseLimits {
  /** limit_req per client IP ($binary_remote_addr): sustained rate, and the burst above it answered at once (nodelay). */
  perIpRequestsPerSecondMax: number;
  perIpBurstRequestsMax: number;
  /** limit_req per Authorization header value (the key itself stays in nginx's shared memory only). */
  perKeyRequestsPerSecondMax: number;
  perKeyBurstRequestsMax: number;
  /** limit_conn: requests in progress (long-polls included) per client IP, and per Authorization value. */
  perIpConnectionsMax: number;
  perKeyConnectionsMax: number;
  /**
   * limit_conn: requests in progress on all public servers together. Each holds two worker
   * connections (client, upstream); by default what is left after the upstream keepalive pool
   * and internalReservedConnections, halved, so the internal server (processors' transitions)
   * keeps working while the public one is flooded.
   */
  publicConnectionsMax?: number;
  internalReservedConnections: number;
  /** Shared memory of each limit zone: ~16k states per MiB for IPs, fewer for long keys; the least recently used is dropped when full. */
  limitZoneBytes: number;
  /** Retry-After of a 429 from nginx. */
  retryAfterS: number;
}

export const defaultAbuseLimits: Readonly<Required<Omit<NginxAbuseLimits, 'publicConnectionsMax'>>> = {
  perIpRequestsPerSecondMax: 20_000,
  perIpBurstRequestsMax: 20_000,
  perKeyRequestsPerSecondMax: 20_000,
  perKeyBurstRequestsMax: 20_000,
  // The e2e bench holds up to 2,048 long-polls plus its POST connections.
  perIpConnectionsMax: 4_096,
  perKeyConnectionsMax: 4_096,
  internalReservedConnections: 1_024,
  limitZoneBytes: 10 * 1024 * 1024,
  retryAfterS: 1,
};

/**
 * For the accept bench's own nginx: the directives stay (their cost is measured) but no rate is
 * reached (wrk's closed loop runs at tens of thousands of requests/s from one IP and key).
 */
export const benchAbuseLimits: Partial<NginxAbuseLimits> = {
  perIpRequestsPerSecondMax: 1_000_000,
  perIpBurstRequestsMax: 1_000_000,
  perKeyRequestsPerSecondMax: 1_000_000,
  perKeyBurstRequestsMax: 1_000_000,
};

/** `perIpRequestsPerSecondMax` → `RINGPAY_NGINX_PER_IP_REQUESTS_PER_SECOND_MAX`. */
export function abuseLimitEnvName(name: keyof NginxAbuseLimits): string {
  return `RINGPAY_NGINX_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** The limits set in the environment (RINGPAY_NGINX_<NAME>, positive integers); the rest stay default. */
export function abuseLimitsFromEnv(env: NodeJS.ProcessEnv): Partial<NginxAbuseLimits> {
  const out: Partial<Record<keyof NginxAbuseLimits, number>> = {};
  for (const name of [...Object.keys(defaultAbuseLimits), 'publicConnectionsMax'] as (keyof NginxAbuseLimits)[]) {
    const raw = env[abuseLimitEnvName(name)];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${abuseLimitEnvName(name)} must be a positive integer, got ${JSON.stringify(raw)}`);
    out[name] = value;
  }
  return out;
}

/** The limits in force, with publicConnectionsMax worked out; throws on a limit nginx could not honour. */
export function resolveAbuseLimits(given: Partial<NginxAbuseLimits> | undefined, workerConnections: number, upstreamKeepalive: number): Required<NginxAbuseLimits> {
  const l = { ...defaultAbuseLimits, ...given };
  const publicConnectionsMax = l.publicConnectionsMax ?? Math.floor((workerConnections - upstreamKeepalive - l.internalReservedConnections) / 2);
  const resolved = { ...l, publicConnectionsMax };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new Error(`nginx abuse limit ${name} must be a positive integer, got ${value} (worker_connections ${workerConnections}, upstream keepalive ${upstreamKeepalive})`);
    }
  }
  return resolved;
}
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
  /** host:port of the reporting service (GET /payments lists, /reports/…); none: those go to the nodes. */
  reportingServer?: string;
  /** host:port of the notifier (merchant webhooks: /webhook_endpoints…, /events…); none: those are 404s from the nodes. */
  notifierServer?: string;
  /** host:port of the admin service (operators: /admin/…), proxied on the internal listener only; none: 404 there too. */
  adminServer?: string;
  accessLog: string;
  errorLog: string;
  workerProcesses?: number;
  workerConnections?: number;
  workerRlimitNofile?: number;
  /**
   * The master runs as root: its workers (which parse every request) run as this unprivileged
   * user (`user` directive, issue #17 part 7). Unset when the master is not root (workers then
   * run as the master's user and nginx ignores the directive).
   */
  workerUser?: Pick<ServiceUser, 'name' | 'group'> | null;
  /** More upstream/server pairs with the same proxy settings (e.g. a bench target). */
  extraSites?: NginxSite[];
  /** Public-server limits; unset ones take defaultAbuseLimits. */
  abuseLimits?: Partial<NginxAbuseLimits>;
  /** Idle upstream connections kept per upstream (default upstreamKeepaliveConnections). */
  upstreamKeepalive?: number;
  /**
   * The public server(s) serve TLS 1.2+ only, with this certificate and key (issue #17 part 3;
   * the stack's local CA issues them, scripts/stack/tls.ts). Unset: plain HTTP (tests of the
   * config alone, and the accept bench's own targets).
   */
  publicTls?: NginxTls;
  /** The internal server too (processors, operators, the admin API): TLS only with this certificate. */
  internalTls?: NginxTls;
  /** The operators' web console (console/): its service (host:port) and nginx's own listener for it. */
  console?: { server: string; listenPort: number; tls?: NginxTls };
}

export interface NginxTls {
  certFile: string;
  keyFile: string;
  /** The CA that issued certFile: the readiness probe verifies the server with it. */
  caFile: string;
}

/** The TLS session cache every public server shares (nginx's shared memory; ~4,000 sessions a MB). */
export const tlsSessionCacheMb = 10;
export const tlsSessionTimeoutMin = 60;
const tlsPathRe = /^\/[A-Za-z0-9._\/\-]+$/;

/** The directives of a TLS public server: TLS 1.2 and 1.3 only, OpenSSL's default ciphers for them. */
function tlsDirectives(tls: NginxTls | undefined): string {
  if (tls === undefined) return '';
  for (const path of [tls.certFile, tls.keyFile]) if (!tlsPathRe.test(path)) throw new Error(`bad TLS file path ${JSON.stringify(path)}`);
  return `
    ssl_certificate ${tls.certFile};
    ssl_certificate_key ${tls.keyFile};
    ssl_protocols TLSv1.2 TLSv1.3;
    # Clients keep connections alive; a reconnecting one resumes its session instead of a new handshake.
    ssl_session_cache shared:ringpay_tls:${tlsSessionCacheMb}m;
    ssl_session_timeout ${tlsSessionTimeoutMin}m;`;
}

// What the access log masks (nginx has no Luhn, so it over-masks): 13 digit-like characters,
// each two joined by at most 3 ASCII characters other than letters, digits and `_`. Digit-like
// is an ASCII digit or any byte of a non-ASCII character (full-width and other Unicode digits,
// Unicode spaces and dashes): a superset of what the node reads as a card number
// (lib/card-numbers.ts: NFKC, separators, at most separatorRunMax in a row).
export const cardRunRegex = '[0-9\\x80-\\xff](?:[^0-9A-Za-z_\\x80-\\xff]{0,3}[0-9\\x80-\\xff]){12}';
/**
 * What the access log also masks: a merchant API key's secret (`sk_live_…`, the stack's test keys
 * `sk_test_…`) or an operator token (`rpop_…`) pasted into a path, e.g. an operator naming a key
 * by its secret in `/admin/keys/<secret>/revoke` (refused 400, but the line is written).
 */
export const secretRunRegex = '(?:sk_live_|sk_test_|rpop_)[A-Za-z0-9_-]{8}';
/** Replaces the logged URI or checkout key from the first card-like run or secret on. */
export const maskedMark = '[masked]';

const problem = (status: number, title: string, code: string): string =>
  JSON.stringify({ type: 'about:blank', title, status, code });

const upstreamNameRe = /^[A-Za-z_][A-Za-z0-9_]*$/;
const systemNameRe = /^[a-z_][a-z0-9_-]{0,31}$/;

/** A user or group name as it goes into the config: checked, never able to end the directive. */
function nginxName(name: string): string {
  if (!systemNameRe.test(name)) throw new Error(`not a user or group name for nginx: ${JSON.stringify(name)}`);
  return name;
}
// host:port, [v6]:port, or a Unix socket (unix:/abs/path: the payment nodes of the local stack).
const serverRe = /^[A-Za-z0-9.\-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$|^unix:\/[A-Za-z0-9._\/\-]+$/;

function upstreamBlock(name: string, servers: string[], keepalive: number): string {
  if (!upstreamNameRe.test(name)) throw new Error(`bad upstream name ${JSON.stringify(name)}`);
  if (servers.length === 0) throw new Error(`upstream ${name} has no servers`);
  for (const s of servers) if (!serverRe.test(s)) throw new Error(`bad upstream server ${JSON.stringify(s)}`);
  return `
  upstream ${name} {
    hash $checkout_key consistent;
${servers.map((s) => `    server ${s} max_fails=0;`).join('\n')}
    keepalive ${keepalive};
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
`;
}

/** The reporting service: one server, no hashing (any request may go to it). */
function reportingUpstreamBlock(server: string): string {
  if (!serverRe.test(server)) throw new Error(`bad reporting server ${JSON.stringify(server)}`);
  return `
  # What goes to the reporting service: the payment and refund lists (GET /payments, GET /refunds,
  # with no checkout id) and everything under /reports/. A create (POST /payments) or anything
  # naming a checkout id (/payments/{id}/refunds too) still goes to its node.
  map "$request_method $uri $http_x_payment_checkout_id" $reporting_request {
    default 0;
    "GET /payments " 1;
    "GET /refunds " 1;
    "~^[A-Z]+ /reports/" 1;
  }
  upstream ringpay_reporting {
    server ${server} max_fails=0;
    keepalive 16;
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
`;
}

/** The notifier: one server, no hashing. Its paths name no checkout id. */
function notifierUpstreamBlock(server: string): string {
  if (!serverRe.test(server)) throw new Error(`bad notifier server ${JSON.stringify(server)}`);
  return `
  # What goes to the notifier (merchant webhooks): its endpoints and events, any method. No
  # payment route starts with these segments, so nothing of the nodes' is taken.
  map $uri $notifier_request {
    default 0;
    "~^/(webhook_endpoints|events)(/|$)" 1;
  }
  upstream ringpay_notifier {
    server ${server} max_fails=0;
    keepalive 16;
    keepalive_requests 100000;
    keepalive_timeout 60s;
  }
`;
}

/** The admin service: one server, reached from the internal listener only. */
function adminUpstreamBlock(server: string): string {
  if (!serverRe.test(server)) throw new Error(`bad admin server ${JSON.stringify(server)}`);
  return `
  upstream ringpay_admin {
    server ${server} max_fails=0;
    keepalive 4;
    keepalive_timeout 60s;
  }
`;
}

/** The console's server: one upstream, its own listener; the service's probes stay on 127.0.0.1. */
function consoleBlocks(host: string, c: NonNullable<NginxConfOptions['console']>, accessLog: string, retryAfterS: number): string {
  if (!serverRe.test(c.server)) throw new Error(`bad console server ${JSON.stringify(c.server)}`);
  return `
  upstream ringpay_console {
    server ${c.server} max_fails=0;
    keepalive 8;
    keepalive_timeout 60s;
  }
  # The operators' web console (console/): its own listener, every path to the service but its
  # probes and metrics. The service answers its own errors (HTML pages); nginx's are problem+json.
  server {
    listen ${host}:${c.listenPort}${c.tls === undefined ? '' : ' ssl'};${tlsDirectives(c.tls)}
    access_log ${accessLog} ringpay_json;
${errorLocations(retryAfterS)}

    location ~ ^/(metrics|healthz|readyz)$ {${notFound}
    }
    location / {
      client_max_body_size 8k;
      client_body_buffer_size 8k;${proxyDirectives('ringpay_console', 'strip', 330)}
      # Host is $host (no port): the console checks a form's Origin against the host and port the browser used.
      proxy_set_header X-Forwarded-Host $http_host;
      # CSV downloads stream as the service writes them.
      proxy_buffering off;
    }
  }
`;
}

/**
 * Proxy directives shared by every proxied location (repeated per location: proxy_set_header does
 * not merge). `credential`: 'strip' on public servers (a public caller never hands a node an
 * internal credential), 'pass' on the internal listener (the caller's own, unchanged; nginx adds none).
 */
function proxyDirectives(upstream: string, credential: 'strip' | 'pass', readTimeoutS = 35): string {
  return `
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # The client's address as nginx accepted it (whatever the client sent is overwritten): the
      # node counts failed keys and logs by it, believing it only from nginx (its peer address).
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;${credential === 'strip' ? `
      proxy_set_header ${internalTokenHeader} "";` : ''}
      proxy_next_upstream off;
      proxy_next_upstream_tries 1;
      proxy_intercept_errors off;
      proxy_connect_timeout 1s;
      proxy_send_timeout 10s;
      proxy_read_timeout ${readTimeoutS}s;`;
}

/** Named error locations + the keyless 400, shared by every server. */
function errorLocations(retryAfterS: number): string {
  return `
    error_page 502 503 = @node_unavailable;
    error_page 504 = @node_timeout;
    error_page 413 = @body_too_large;
    error_page 429 = @rate_limited;

    location @node_unavailable {
      default_type application/problem+json;
      add_header Retry-After 1 always;
      return 503 '${problem(503, 'Payment node unavailable', 'node_unavailable')}';
    }
    location @node_timeout {
      default_type application/problem+json;
      return 504 '${problem(504, 'Payment node timed out', 'node_timeout')}';
    }
    location @rate_limited {
      default_type application/problem+json;
      add_header Retry-After ${retryAfterS} always;
      return 429 '${problem(429, 'Too many requests; retry later', 'rate_limited')}';
    }
    location @body_too_large {
      default_type application/problem+json;
      return 413 '${problem(413, 'Request body too large', 'body_too_large')}';
    }
    location @not_found {
      default_type application/problem+json;
      return 404 '${problem(404, 'Not found', 'not_found')}';
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

/** An export streams for minutes at most (reporting/limits.ts exportDeadlineMs). */
const reportingReadTimeoutS = 300;

function publicServer(host: string, port: number, upstream: string, accessLog: string, errorLog: string, limits: Required<NginxAbuseLimits>,
  tls: NginxTls | undefined, reportingUpstream?: string, notifierUpstream?: string): string {
  // Lists and exports have no checkout id: they go to the reporting service, before the checks
  // that refuse a keyless request (a rewrite to an internal location: an error_page here would
  // drop the server's own error pages). Streamed unbuffered, so a slow download slows the export.
  const reporting = reportingUpstream === undefined ? { route: '', location: '' } : {
    route: `
      if ($reporting_request) {
        rewrite ^ /__reporting$uri last;
      }`,
    location: `

    # Only reachable through the rewrite above: a request for it from outside is a 404.
    location /__reporting/ {
      internal;
      error_page 404 = @not_found;
      rewrite ^/__reporting(/.*)$ $1 break;${proxyDirectives(reportingUpstream, 'strip', reportingReadTimeoutS)}
      proxy_buffering off;
    }`,
  };
  // The notifier's API likewise (no checkout id), rewritten before the checks like the reporting routes.
  const notifier = notifierUpstream === undefined ? { route: '', location: '' } : {
    route: `
      if ($notifier_request) {
        rewrite ^ /__notifier$uri last;
      }`,
    location: `

    # Only reachable through the rewrite above: a request for it from outside is a 404.
    location /__notifier/ {
      internal;
      error_page 404 = @not_found;
      rewrite ^/__notifier(/.*)$ $1 break;${proxyDirectives(notifierUpstream, 'strip')}
    }`,
  };
  return `
  server {
    listen ${host}:${port}${tls === undefined ? '' : ' ssl'};${tlsDirectives(tls)}
    access_log ${accessLog} ringpay_json;
    # nginx's error messages quote the request line, and anyone can put a card number in a public
    # path (GET /payments/<card number>): the node refuses it, but when the node is down nginx
    # writes "request: GET /payments/4111…" at level error. Only crit and worse are logged for
    # public requests; a failed upstream still shows in the access log ($upstream_status).
    error_log ${errorLog} crit;
${errorLocations(limits.retryAfterS)}

    # Abuse limits (NginxAbuseLimits): over any of them, 429 rate_limited with Retry-After.
    limit_req zone=ringpay_per_ip burst=${limits.perIpBurstRequestsMax} nodelay;
    limit_req zone=ringpay_per_key burst=${limits.perKeyBurstRequestsMax} nodelay;
    limit_conn ringpay_per_ip_conn ${limits.perIpConnectionsMax};
    limit_conn ringpay_per_key_conn ${limits.perKeyConnectionsMax};
    limit_conn ringpay_public_conn ${limits.publicConnectionsMax};

    location /internal/ {${notFound}
    }

    # The operators' admin API is never served here (nginx's internal listener only).
    location /admin/ {${notFound}
    }
    location = /admin {${notFound}
    }${reporting.location}${notifier.location}

    location / {
      # Only for nginx's own answers (the 400 below); proxied responses keep their type.
      default_type application/problem+json;${reporting.route}${notifier.route}
      if ($checkout_header_invalid) {${invalidKey}
      }
      if ($checkout_key = "") {${missingKey}
      }${proxyDirectives(upstream, 'strip')}
      # The whole-request deadline: client_body_timeout bounds only the gap between two reads, so
      # a client dribbling a byte every 9 s would hold a buffered body for hours. Streamed, the
      # body reaches the node as it comes, and the node cuts the request off at its
      # requestDeadlineMs (payment-svc/limits.ts) with 408 request_timeout.
      proxy_request_buffering off;
    }
  }
`;
}

export function renderNginxConf(o: NginxConfOptions): string {
  const host = o.host ?? '127.0.0.1';
  const temp = (name: string) => join(o.dir, 'temp', name);
  const extra = o.extraSites ?? [];
  const workerConnections = o.workerConnections ?? defaultWorkerConnections;
  const keepalive = o.upstreamKeepalive ?? upstreamKeepaliveConnections;
  const limits = resolveAbuseLimits(o.abuseLimits, workerConnections, keepalive);
  return `# Generated by scripts/stack/nginx.ts — do not edit; re-rendered on every stack start/reload.
${o.workerUser ? `user ${nginxName(o.workerUser.name)} ${nginxName(o.workerUser.group)};\n` : ''}worker_processes ${o.workerProcesses ?? defaultWorkerProcesses};
worker_rlimit_nofile ${o.workerRlimitNofile ?? defaultWorkerRlimitNofile};
pid ${join(o.dir, 'nginx.pid')};
error_log ${o.errorLog} warn;

events {
  worker_connections ${workerConnections};
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
  # nginx cannot check Luhn, so any run of 13 digit-like characters is masked (see cardRunRegex);
  # and from a pasted API key secret or operator token on (secretRunRegex).
  map $uri $uri_logged {
    default $uri;
    "~(?s)^(?<uri_before_card>.*?)(?:${cardRunRegex}|${secretRunRegex})" "\${uri_before_card}${maskedMark}";
  }
  map $checkout_key $checkout_key_logged {
    default $checkout_key;
    "~(?s)^(?<key_before_card>.*?)(?:${cardRunRegex}|${secretRunRegex})" "\${key_before_card}${maskedMark}";
  }
  log_format ringpay_json escape=json '{"time":"$time_iso8601","request_id":"$request_id",'
    '"remote_addr":"$remote_addr","method":"$request_method","uri":"$uri_logged","status":$status,'
    '"checkout_key":"$checkout_key_logged","upstream_addr":"$upstream_addr",'
    '"upstream_status":"$upstream_status","request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time","body_bytes_sent":$body_bytes_sent}';
  access_log ${o.accessLog} ringpay_json;

  # Abuse-limit zones (used by the public servers only). limit_conn counts requests in progress.
  limit_req_zone $binary_remote_addr zone=ringpay_per_ip:${limits.limitZoneBytes} rate=${limits.perIpRequestsPerSecondMax}r/s;
  limit_req_zone $http_authorization zone=ringpay_per_key:${limits.limitZoneBytes} rate=${limits.perKeyRequestsPerSecondMax}r/s;
  limit_conn_zone $binary_remote_addr zone=ringpay_per_ip_conn:${limits.limitZoneBytes};
  limit_conn_zone $http_authorization zone=ringpay_per_key_conn:${limits.limitZoneBytes};
  # One key for every public server: their requests in progress share one budget.
  map $server_port $ringpay_public_key {
    default public;
  }
  limit_conn_zone $ringpay_public_key zone=ringpay_public_conn:1m;
  limit_req_status 429;
  limit_conn_status 429;

  # The routing key: the header, else the checkout id in the path.
  map $uri $checkout_key_from_path {
    default "";
    "~^/payments/([^/]+)/?$" $1;
    "~^/payments/([^/]+)/(cancel|capture)$" $1;
    "~^/payments/([^/]+)/refunds(/[^/]+)?/?$" $1;
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
${upstreamBlock('payment_nodes', o.nodeServers, keepalive)}${extra.map((s) => upstreamBlock(s.upstreamName, s.servers, keepalive)).join('')}${o.reportingServer === undefined ? '' : reportingUpstreamBlock(o.reportingServer)}${o.notifierServer === undefined ? '' : notifierUpstreamBlock(o.notifierServer)}${o.adminServer === undefined ? '' : adminUpstreamBlock(o.adminServer)}
  # Public API.
${publicServer(host, o.publicPort, 'payment_nodes', o.accessLog, o.errorLog, limits, o.publicTls, o.reportingServer === undefined ? undefined : 'ringpay_reporting',
  o.notifierServer === undefined ? undefined : 'ringpay_notifier')}
  # Internal API for processors, operators and checkers: same upstream (same ring). Each caller's
  # own credential header goes through unchanged; nginx adds none, the node checks it. No abuse
  # limits: it keeps the worker connections the public servers leave (internalReservedConnections).
  server {
    listen ${host}:${o.internalPort}${o.internalTls === undefined ? '' : ' ssl'};${tlsDirectives(o.internalTls)}
    access_log ${o.accessLog} ringpay_json;
${errorLocations(limits.retryAfterS)}

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
${o.adminServer === undefined ? '' : `
    # The operators' admin API (admin/): the operator's bearer token goes through unchanged and
    # the service checks it (nginx holds none); no internal service credential is passed on.
    location /admin/ {
      default_type application/problem+json;
      client_max_body_size 4k;
      client_body_buffer_size 4k;${proxyDirectives('ringpay_admin', 'strip', 15)}
    }
`}
    location / {${notFound}
    }
  }
${o.console === undefined ? '' : consoleBlocks(host, o.console, o.accessLog, limits.retryAfterS)}${extra.map((s) => `\n  # Extra site: ${s.upstreamName}.\n${publicServer(host, s.listenPort, s.upstreamName, o.accessLog, o.errorLog, limits, o.publicTls)}`).join('')}}
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

export interface NginxOptions extends Omit<NginxConfOptions, 'accessLog' | 'errorLog' | 'workerUser'> {
  /** The workers' user when the runner is root; default serviceUser(). */
  workerUser?: ServiceUser | null;
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
async function probe(port: number, host: string, tls: NginxTls | undefined): Promise<true> {
  // One connection per probe, closed after it (no pool kept between probes).
  const dispatcher = new Agent({ pipelining: 0, ...(tls === undefined ? {} : { connect: { ca: readFileSync(tls.caFile) } }) });
  try {
    const res = await request(`${tls === undefined ? 'http' : 'https'}://${host}:${port}/`, { dispatcher, signal: AbortSignal.timeout(nginxProbeTimeoutMs) });
    const body = await res.body.text();
    if (res.statusCode !== 400 || !body.includes('checkout_id_missing')) throw new Error(`unexpected probe answer ${res.statusCode}`);
    return true;
  } finally {
    await dispatcher.close();
  }
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
        pollUntil('nginx', () => probe(opts.publicPort, host, opts.publicTls), { timeoutMs: nginxReadyTimeoutMs, intervalMs: nginxPollIntervalMs, signal }).then(() => {}),
    });
  }

  /** Renders the config and checks it with `nginx -t`. */
  #writeConfig(): void {
    const o = this.#opts;
    const workerUser = process.getuid?.() === 0 ? (o.workerUser !== undefined ? o.workerUser : serviceUser()) : null;
    // The config and pid stay root's (a worker must not rewrite what the root master reloads);
    // the workers pass through the prefix dir to their temp dirs, which are theirs, 0700.
    mkdirSync(o.dir, { recursive: true });
    chmodSync(o.dir, workerUser ? sharedStackDirMode : privateDirMode);
    for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) ensurePrivateDir(o.dir, join('temp', d), workerUser);
    mkdirSync(o.logsDir, { recursive: true });
    const hard = hardNofileLimit();
    const wanted = o.workerRlimitNofile ?? defaultWorkerRlimitNofile;
    const conf = renderNginxConf({
      ...o,
      accessLog: this.accessLog,
      errorLog: this.errorLog,
      workerUser,
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
    await pollUntil('nginx after reload', () => probe(this.#opts.publicPort, host, this.#opts.publicTls), { timeoutMs: nginxReadyTimeoutMs, intervalMs: nginxPollIntervalMs });
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
