// The public listener, and the internal one, serve TLS 1.2 and 1.3 only, with a certificate of the stack's CA (#17 part 3).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, rootCertificates, type ConnectionOptions } from 'node:tls';
import { loadStackInfo } from '../helpers/stack.ts';

const stack = loadStackInfo();
const port = Number(new URL(stack.publicUrl).port);
const ca = readFileSync(stack.publicCaFile);
const handshakeTimeoutMs = 10_000;

/** The negotiated protocol, or the error code of a refused handshake. */
function handshake(options: ConnectionOptions, to = port): Promise<{ protocol?: string | null; error?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: to, ca, timeout: handshakeTimeoutMs, ...options }, () => {
      resolve({ protocol: socket.getProtocol() });
      socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    socket.on('timeout', () => socket.destroy(new Error('handshake timed out')));
  });
}

t.test('https is the public URL', async (t) => {
  t.match(stack.publicUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
});

t.test('TLS 1.2 and 1.3 are served, TLS 1.1 is refused by the server', async (t) => {
  t.same(await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }), { protocol: 'TLSv1.2' });
  t.same(await handshake({ minVersion: 'TLSv1.3' }), { protocol: 'TLSv1.3' });
  // The client allows 1.1 (and its old ciphers); the server's protocol_version alert refuses it.
  t.same(await handshake({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), { error: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
});

t.test('the certificate verifies against the stack\'s CA, and not against the system\'s alone', async (t) => {
  t.same(await handshake({}), { protocol: 'TLSv1.3' });
  t.same(await handshake({ ca: [...rootCertificates] }), { error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
});

t.test('plain HTTP to the public port is answered 400 by nginx and goes nowhere else', async (t) => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/payments/tls-plain', agent: false, headers: { authorization: `Bearer ${stack.apiKeys.merchant_demo}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 400);
  const routed = readFileSync(stack.nginx.accessLog, 'utf8').split('\n').filter((l) => l.includes('tls-plain') && !l.includes('"upstream_addr":""'));
  t.same(routed, [], 'no access-log line with an upstream for it');
});

t.test('the internal listener (processors, operators, the admin API) likewise: TLS 1.2+ only', async (t) => {
  const internalPort = Number(new URL(stack.internalUrl).port);
  t.match(stack.internalUrl, /^https:/);
  t.same(await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, internalPort), { protocol: 'TLSv1.2' });
  t.same(await handshake({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }, internalPort), { error: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
  t.same(await handshake({ ca: [...rootCertificates] }, internalPort), { error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
});
