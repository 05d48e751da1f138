// nginx in front of the nodes: keyless requests, the internal prefix, body limit, and that a
// key always lands on the same node — through the public AND the internal server.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { dirname } from 'node:path';
import { loadStackInfo } from '../helpers/stack.ts';
import { accessLogFor, get, nodeAddr, publicUpstreamOf, requestTimeoutMs } from './helpers.ts';
import { internalTokenHeader } from '../../lib/internal-credentials.ts';

const stack = loadStackInfo();
const problemJson = /^application\/problem\+json/;
// 12 hex characters: never 13 digits in a row, which the access log would mask (it cannot check Luhn).
const key = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;

t.test('a request without a checkout id gets 400 problem+json from nginx', async (t) => {
  for (const [name, url, init] of [
    ['public POST /payments', `${stack.publicUrl}/payments`, { method: 'POST', body: '{}' }],
    ['public GET /', `${stack.publicUrl}/`, {}],
    ['public empty header', `${stack.publicUrl}/payments`, { method: 'POST', body: '{}', headers: { 'x-payment-checkout-id': '' } }],
    ['internal', `${stack.internalUrl}/internal/payments/x`, {}],
  ] as const) {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });
    t.equal(res.status, 400, name);
    t.match(res.headers.get('content-type') ?? '', problemJson, `${name} content type`);
    t.same(await res.json(), { type: 'about:blank', title: 'Missing checkout id', status: 400, code: 'checkout_id_missing' }, `${name} body`);
  }
});

/** One raw HTTP/1.1 request (fetch would normalise the header values this test is about). */
function rawRequest(port: number, head: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    // The public listener is TLS only (the stack's CA is trusted: loadStackInfo).
    const socket = tlsConnect({ port, host: '127.0.0.1' });
    let answer = '';
    socket.setTimeout(requestTimeoutMs, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (chunk) => { answer += chunk.toString('utf8'); });
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: Number(answer.slice(9, 12)), text: answer }));
    socket.end(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
}

t.test('a malformed checkout-id header gets 400 checkout_id_invalid from nginx and is never routed', async (t) => {
  const port = Number(new URL(stack.publicUrl).port);
  const body = JSON.stringify({ amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa' });
  for (const [name, value] of [
    ['leading TAB', `\t${key('tab')}`],
    ['trailing TAB', `${key('tab')}\t`],
    ['inner space', `${key('sp')} x`],
    ['65 characters', 'a'.repeat(65)],
  ] as const) {
    const res = await rawRequest(port, `POST /payments HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${stack.apiKeys.merchant_demo}\r\ncontent-type: application/json\r\nx-payment-checkout-id: ${value}`, body);
    t.equal(res.status, 400, `${name}: 400`);
    t.match(res.text, /"code":"checkout_id_invalid"/, `${name}: checkout_id_invalid`);
    const trimmed = value.trim();
    if (/^[A-Za-z0-9_-]{1,64}$/.test(trimmed)) {
      const stored = await get(`${stack.internalUrl}/internal/payments/merchant_demo/${trimmed}`, { 'x-payment-checkout-id': trimmed, [internalTokenHeader]: stack.internalTokens.audit });
      t.equal(stored.status, 404, `${name}: nothing stored under the trimmed id`);
    }
  }
});

t.test('/internal/ is 404 on the public port, whatever the headers', async (t) => {
  const res = await get(`${stack.publicUrl}/internal/payments/abc`, { 'x-payment-checkout-id': 'abc', [internalTokenHeader]: stack.internalTokens.processor });
  t.equal(res.status, 404);
  t.match(res.type, problemJson);
  t.equal(JSON.parse(res.body).code, 'not_found');
});

t.test('the internal port serves only /internal/', async (t) => {
  const res = await get(`${stack.internalUrl}/payments/abc`, { 'x-payment-checkout-id': 'abc' });
  t.equal(res.status, 404);
  t.equal(JSON.parse(res.body).code, 'not_found');
});

t.test('bodies over 16k get 413 problem+json', async (t) => {
  const res = await fetch(`${stack.publicUrl}/payments`, {
    method: 'POST',
    headers: { 'x-payment-checkout-id': key('big'), 'content-type': 'application/json' },
    body: 'x'.repeat(17 * 1024),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  t.equal(res.status, 413);
  t.match(res.headers.get('content-type') ?? '', problemJson);
  t.equal(((await res.json()) as { code: string }).code, 'body_too_large');
});

t.test('the routing key comes from the header, else the path', async (t) => {
  const k = key('route');
  await get(`${stack.publicUrl}/payments/${k}`);
  await get(`${stack.publicUrl}/webhooks/psp/sandbox/${k}`);
  await get(`${stack.publicUrl}/payments`, { 'x-payment-checkout-id': k });
  await get(`${stack.publicUrl}/payments/${k}/cancel`);
  await get(`${stack.publicUrl}/payments/${k}/capture`);
  await get(`${stack.publicUrl}/payments/${k}/refunds`);
  await get(`${stack.publicUrl}/payments/${k}/refunds/re_abc`);
  const lines = await accessLogFor(k, 7);
  t.equal(lines.length, 7, 'all seven requests carried the key');
  t.equal(new Set(lines.map((l) => l.upstream_addr)).size, 1, 'and went to one node');
});

t.test('a key always maps to one node, keys spread over all nodes, internal = public ring', async (t) => {
  const keysCount = 60;
  const byNode = new Map<string, number>();
  const nodeAddrs = new Set(stack.nodes.map((n) => nodeAddr(n)));
  for (let i = 0; i < keysCount; i++) {
    const k = key('ring');
    const upstream = await publicUpstreamOf(k);
    t.ok(nodeAddrs.has(upstream), `${k} went to a node (${upstream})`);
    byNode.set(upstream, (byNode.get(upstream) ?? 0) + 1);
    if (i % 10 === 0) {
      // Same key again, and through the internal server: same node.
      await get(`${stack.publicUrl}/payments`, { 'x-payment-checkout-id': k });
      await get(`${stack.internalUrl}/internal/payments/merchant_demo/${k}`, { 'x-payment-checkout-id': k, [internalTokenHeader]: stack.internalTokens.audit });
      const lines = await accessLogFor(k, 3);
      t.same(new Set(lines.map((l) => l.upstream_addr)), new Set([upstream]), `${k}: public and internal route to ${upstream}`);
    }
  }
  t.equal(byNode.size, stack.nodes.length, `all ${stack.nodes.length} nodes got keys: ${JSON.stringify([...byNode])}`);
});

t.test('each node serves nginx on a Unix socket only its service user may open (0600 in a 0700 dir)', async (t) => {
  for (const node of stack.nodes) {
    const st = lstatSync(node.publicSocket);
    t.ok(st.isSocket(), `${node.id}: ${node.publicSocket} is a socket`);
    t.equal(st.mode & 0o777, 0o600, `${node.id}: socket mode`);
    t.equal(lstatSync(dirname(node.publicSocket)).mode & 0o777, 0o700, `${node.id}: its dir`);
  }
});
