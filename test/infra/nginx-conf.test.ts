// renderNginxConf: the routing invariants are in the text, and real `nginx -t` accepts it,
// including extra sites (e.g. a bench target).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abuseLimitEnvName, abuseLimitsFromEnv, defaultAbuseLimits, findNginx, renderNginxConf, resolveAbuseLimits } from '../../scripts/stack/nginx.ts';
import { serviceUser } from '../../scripts/stack/service-user.ts';
import { ensureLocalCa } from '../../scripts/stack/tls.ts';

const nginxTestTimeoutMs = 10_000;

function render(dir: string, workerUser = serviceUser()) {
  return renderNginxConf({
    dir,
    publicPort: 18080,
    internalPort: 18081,
    nodeServers: ['127.0.0.1:19001', '127.0.0.1:19002', '127.0.0.1:19003'],
    accessLog: join(dir, 'access.log'),
    errorLog: join(dir, 'error.log'),
    workerProcesses: 2,
    workerUser,
    extraSites: [{ listenPort: 18090, upstreamName: 'bench_noop', servers: ['127.0.0.1:19101', '127.0.0.1:19102'] }],
  });
}

t.test('routing invariants', async (t) => {
  const conf = render('/x');
  const upstream = conf.match(/upstream payment_nodes \{([^}]*)\}/)?.[1] ?? '';
  t.match(upstream, /hash \$checkout_key consistent;/);
  t.same(
    [...upstream.matchAll(/server (\S+) max_fails=0;/g)].map((m) => m[1]),
    ['127.0.0.1:19001', '127.0.0.1:19002', '127.0.0.1:19003'],
    'servers in node order, never marked failed',
  );
  t.match(upstream, /keepalive 2048;/, 'idle upstream connections cover the long-polls in flight');
  t.match(upstream, /keepalive_requests 100000;/);
  t.match(upstream, /keepalive_timeout 60s;/);
  t.equal(conf.match(/upstream payment_nodes/g)?.length, 1, 'one upstream for public and internal');
  t.equal(conf.match(/proxy_pass http:\/\/payment_nodes;/g)?.length, 2, 'public and internal proxy to it');
  t.notMatch(conf, /proxy_next_upstream (?!off|_tries 1)/, 'never retried on another node');
  // nginx holds no internal credential: it never sets the header to a value, strips it on every
  // public server, and leaves the caller's own untouched on the internal one (#17 part 2).
  t.equal(conf.match(/X-Ringpay-Internal-Token/gi)?.length, 2, 'the credential header is named only where it is stripped');
  t.equal(conf.match(/proxy_set_header X-Ringpay-Internal-Token "";/g)?.length, 2, 'stripped on public + extra site');
  const internalServer = conf.slice(conf.indexOf('listen 127.0.0.1:18081;'));
  const internalLocation = internalServer.slice(0, internalServer.indexOf('location / {'));
  t.match(internalLocation, /proxy_pass http:\/\/payment_nodes;/, 'the internal listener proxies /internal/');
  t.notMatch(internalLocation, /Internal-Token|proxy_pass_request_headers off/i, 'and passes the caller\'s credential through unchanged');
  t.match(conf, /worker_processes 2;/);
  t.match(conf, /upstream bench_noop \{[^}]*server 127\.0\.0\.1:19101 max_fails=0;/);
  t.match(conf, /listen 127\.0\.0\.1:18090;/);
});

t.test('abuse limits: on every public server, never on the internal one', async (t) => {
  const conf = render('/x');
  const servers = conf.split(/\n  server \{/).slice(1);
  const internal = servers.filter((s) => s.includes('listen 127.0.0.1:18081;'));
  const publics = servers.filter((s) => !s.includes('listen 127.0.0.1:18081;'));
  t.equal(internal.length, 1);
  t.equal(publics.length, 2, 'the public server and the extra site');
  for (const s of publics) {
    t.match(s, `limit_req zone=ringpay_per_ip burst=${defaultAbuseLimits.perIpBurstRequestsMax} nodelay;`);
    t.match(s, `limit_req zone=ringpay_per_key burst=${defaultAbuseLimits.perKeyBurstRequestsMax} nodelay;`);
    t.match(s, `limit_conn ringpay_per_ip_conn ${defaultAbuseLimits.perIpConnectionsMax};`);
    t.match(s, `limit_conn ringpay_per_key_conn ${defaultAbuseLimits.perKeyConnectionsMax};`);
    // (16384 worker connections - 2048 idle upstream - 1024 reserved) / 2
    t.match(s, 'limit_conn ringpay_public_conn 6656;');
    t.match(s, 'proxy_request_buffering off;', 'bodies stream to the node, whose deadline bounds them');
  }
  t.notMatch(internal[0]!, /limit_req zone|limit_conn ringpay|proxy_request_buffering/);
  t.match(conf, `limit_req_zone $binary_remote_addr zone=ringpay_per_ip:10485760 rate=${defaultAbuseLimits.perIpRequestsPerSecondMax}r/s;`);
  t.match(conf, /limit_req_status 429;\n  limit_conn_status 429;/);
  t.equal(conf.match(/proxy_set_header X-Real-IP \$remote_addr;/g)?.length, 3, 'every proxied location names the client');
  t.match(conf, /error_page 429 = @rate_limited;/);
  t.match(conf, /add_header Retry-After 1 always;\n      return 429 '\{"type":"about:blank","title":"Too many requests; retry later","status":429,"code":"rate_limited"\}';/);
});

t.test('abuse limits: named, from the environment, checked', async (t) => {
  t.equal(abuseLimitEnvName('perIpRequestsPerSecondMax'), 'RINGPAY_NGINX_PER_IP_REQUESTS_PER_SECOND_MAX');
  t.same(abuseLimitsFromEnv({ RINGPAY_NGINX_PER_IP_REQUESTS_PER_SECOND_MAX: '50', RINGPAY_NGINX_PUBLIC_CONNECTIONS_MAX: '100' }),
    { perIpRequestsPerSecondMax: 50, publicConnectionsMax: 100 });
  t.throws(() => abuseLimitsFromEnv({ RINGPAY_NGINX_PER_KEY_BURST_REQUESTS_MAX: '0' }), /RINGPAY_NGINX_PER_KEY_BURST_REQUESTS_MAX/);
  t.equal(resolveAbuseLimits({ internalReservedConnections: 16 }, 64, 4).publicConnectionsMax, 22);
  t.throws(() => resolveAbuseLimits({}, 1024, 2048), /publicConnectionsMax/, 'no room left for public requests');
});

t.test('rejects unsafe inputs', async (t) => {
  t.throws(() => renderNginxConf({ ...baseOpts(), nodeServers: ['127.0.0.1:1; include /etc/passwd'] }));
  t.throws(() => renderNginxConf({ ...baseOpts(), nodeServers: [] }));
});

function baseOpts() {
  return { dir: '/x', publicPort: 1, internalPort: 2, nodeServers: ['127.0.0.1:3'], accessLog: '/x/a', errorLog: '/x/e' };
}

t.test('the reporting service and the notifier: their paths go to them, before the checkout-id checks', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-nginx-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conf = renderNginxConf({
    dir, publicPort: 18080, internalPort: 18081, nodeServers: ['127.0.0.1:19001'], accessLog: join(dir, 'access.log'), errorLog: join(dir, 'error.log'),
    reportingServer: '127.0.0.1:19401', notifierServer: '127.0.0.1:19501', workerUser: serviceUser(),
  });
  t.match(conf, /upstream ringpay_notifier \{[^}]*server 127\.0\.0\.1:19501 max_fails=0;/);
  t.match(conf, /"~\^\/\(webhook_endpoints\|events\)\(\/\|\$\)" 1;/, 'the notifier\'s paths, and nothing that only starts like them');
  const publicRoot = conf.slice(conf.indexOf('    location / {'));
  t.ok(publicRoot.indexOf('if ($notifier_request)') < publicRoot.indexOf('if ($checkout_header_invalid)'), 'rewritten before the checkout-id checks');
  t.match(conf, /location \/__notifier\/ \{\n      internal;/, 'the internal location is not reachable from outside');
  t.equal(conf.match(/proxy_set_header X-Ringpay-Internal-Token "";/g)?.length, 3, 'stripped on the public server and towards reporting and the notifier');
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true });
  const r = spawnSync(findNginx(), ['-t', '-p', dir, '-e', join(dir, 'error.log'), '-c', confFile], { encoding: 'utf8', timeout: nginxTestTimeoutMs });
  t.equal(r.status, 0, `nginx -t: ${r.stderr}`);
  t.throws(() => renderNginxConf({ dir, publicPort: 1, internalPort: 2, nodeServers: ['127.0.0.1:1'], accessLog: 'a', errorLog: 'e', notifierServer: 'x;y' }), /bad notifier server/);
});

t.test('the admin API: proxied on the internal listener only; the public server answers 404 for /admin/', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-nginx-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const conf = renderNginxConf({
    dir, publicPort: 18080, internalPort: 18081, nodeServers: ['127.0.0.1:19001'], accessLog: join(dir, 'access.log'), errorLog: join(dir, 'error.log'),
    reportingServer: '127.0.0.1:19401', notifierServer: '127.0.0.1:19501', adminServer: '127.0.0.1:19601', workerUser: serviceUser(),
  });
  t.match(conf, /upstream ringpay_admin \{[^}]*server 127\.0\.0\.1:19601 max_fails=0;/);
  t.equal(conf.match(/proxy_pass http:\/\/ringpay_admin;/g)?.length, 1, 'proxied from one place only');
  const internalServer = conf.slice(conf.indexOf('listen 127.0.0.1:18081;'));
  const publicServer = conf.slice(conf.indexOf('listen 127.0.0.1:18080;'), conf.indexOf('listen 127.0.0.1:18081;'));
  t.match(internalServer, /location \/admin\/ \{[^}]*proxy_pass http:\/\/ringpay_admin;/, 'the internal listener proxies /admin/');
  t.notMatch(publicServer, /ringpay_admin/, 'the public server never reaches the admin service');
  t.match(publicServer, /location \/admin\/ \{\n\s+default_type application\/problem\+json;\n\s+return 404/, 'and answers 404 for /admin/');
  t.match(publicServer, /location = \/admin \{\n\s+default_type application\/problem\+json;\n\s+return 404/, 'and /admin');
  t.notMatch(internalServer.slice(internalServer.indexOf('location /admin/')), /proxy_set_header Authorization/, 'the operator\'s token goes through unchanged; nginx sets none');
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true });
  const r = spawnSync(findNginx(), ['-t', '-p', dir, '-e', join(dir, 'error.log'), '-c', confFile], { encoding: 'utf8', timeout: nginxTestTimeoutMs });
  t.equal(r.status, 0, `nginx -t: ${r.stderr}`);
  t.throws(() => renderNginxConf({ dir, publicPort: 1, internalPort: 2, nodeServers: ['127.0.0.1:1'], accessLog: 'a', errorLog: 'e', adminServer: 'x;y' }), /bad admin server/);
});

t.test('nginx -t accepts the rendered config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-nginx-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, render(dir));
  const r = spawnSync(findNginx(), ['-t', '-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { encoding: 'utf8', timeout: nginxTestTimeoutMs });
  t.equal(r.status, 0, r.stderr);
});

t.test('workers never run as root: the user directive names the unprivileged service user (#17 part 7)', async (t) => {
  const conf = render('/x', { name: 'ringpay', group: 'ringpay', uid: 999, gid: 999 });
  t.match(conf, /^user ringpay ringpay;$/m);
  t.notMatch(conf, /^user root/m);
  t.equal(conf.match(/^user /gm)?.length, 1, 'one user directive');
  t.notMatch(render('/x', null), /^user /m, 'not root: no directive (workers run as the master)');
  t.throws(() => render('/x', { name: 'root; include /etc/passwd', group: 'x', uid: 1, gid: 1 }), /not a user or group name/);
  if (process.getuid?.() === 0) {
    const user = serviceUser();
    t.ok(user && user.uid !== 0 && user.gid !== 0, 'as root, the stack has an unprivileged service user');
    t.match(render('/x'), new RegExp(`^user ${user!.name} ${user!.group};$`, 'm'));
  }
});

t.test('TLS: the public servers and the internal one take TLS 1.2/1.3 only; Unix-socket nodes; nginx -t accepts it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-nginx-conf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = ensureLocalCa(dir, null);
  const cert = ca.serverCert('nginx', ['127.0.0.1']);
  const conf = renderNginxConf({
    dir, publicPort: 18080, internalPort: 18081, nodeServers: ['unix:/run/ringpay/n1.sock', 'unix:/run/ringpay/n2.sock'],
    accessLog: join(dir, 'access.log'), errorLog: join(dir, 'error.log'), workerUser: serviceUser(),
    publicTls: { certFile: cert.certFile, keyFile: cert.keyFile, caFile: ca.caFile },
    internalTls: { certFile: cert.certFile, keyFile: cert.keyFile, caFile: ca.caFile },
    extraSites: [{ listenPort: 18090, upstreamName: 'bench_target', servers: ['unix:/run/ringpay/t.sock'] }],
  });
  t.match(conf, /listen 127\.0\.0\.1:18080 ssl;/, 'the public server');
  t.match(conf, /listen 127\.0\.0\.1:18090 ssl;/, 'an extra public site too');
  t.match(conf, /listen 127\.0\.0\.1:18081 ssl;/, 'the internal server');
  t.equal(conf.match(/ssl_protocols TLSv1\.2 TLSv1\.3;/g)?.length, 3, 'TLS 1.2 and 1.3 only, on all three servers');
  t.notMatch(renderNginxConf({ dir, publicPort: 1, internalPort: 2, nodeServers: ['127.0.0.1:1'], accessLog: '/a', errorLog: '/e' }), /ssl/, 'no TLS unless asked for');
  t.match(conf, /server unix:\/run\/ringpay\/n1\.sock max_fails=0;/);
  const confFile = join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true });
  const r = spawnSync(findNginx(), ['-t', '-p', dir, '-e', join(dir, 'error.log'), '-c', confFile], { encoding: 'utf8', timeout: nginxTestTimeoutMs });
  t.equal(r.status, 0, `nginx -t: ${r.stderr}`);
  t.throws(() => renderNginxConf({ dir, publicPort: 1, internalPort: 2, nodeServers: ['unix:/x;y'], accessLog: 'a', errorLog: 'e' }), /bad upstream server/);
  t.throws(() => renderNginxConf({ dir, publicPort: 1, internalPort: 2, nodeServers: ['127.0.0.1:1'], accessLog: 'a', errorLog: 'e', publicTls: { certFile: '/a b', keyFile: '/k', caFile: '/c' } }), /bad TLS file path/);
});
