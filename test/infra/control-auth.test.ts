// Issue #17 part 8: the stack's control API served every secret (GET /info) and took node
// restarts with any RINGPAY_* environment from any local process. Now every call needs the
// stack's token, and only allow-listed overrides are taken. Nothing here disturbs the shared
// stack: refused calls change nothing, and a start of a running node does not restart it.

import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { nodeEnvOverridesAllowed } from '../../scripts/stack/control.ts';
import { callControl, ControlError } from '../../scripts/stack/control-client.ts';
import { control, loadStackInfo } from '../helpers/stack.ts';

const stack = loadStackInfo();
const node = stack.nodes[0]!;
const rawTimeoutMs = 10_000;

/** A control call with the given Authorization header (or none), straight with fetch. */
async function raw(path: string, method: 'GET' | 'POST', authorization?: string, body?: unknown): Promise<{ status: number; contentType: string | null; body: any }> {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.controlUrl}${path}`, {
    method, headers, signal: AbortSignal.timeout(rawTimeoutMs), ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), body: JSON.parse(text) };
}

async function pidOf(name: string): Promise<number | null> {
  const { services } = await control<{ services: { name: string; pid: number | null }[] }>('/services', 'GET');
  return services.find((s) => s.name === name)?.pid ?? null;
}

t.test('the token is in a 0600 file in the stack dir and in the 0600 info file', async (t) => {
  const tokenFile = join(stack.dir, 'control-token');
  t.equal(statSync(tokenFile).mode & 0o777, 0o600);
  t.equal(readFileSync(tokenFile, 'utf8').trim(), stack.controlToken);
  t.ok(stack.controlToken.length >= 32, 'a long random token');
  t.equal(statSync(process.env.RINGPAY_STACK_INFO!).mode & 0o777, 0o600, 'info file');
});

t.test('without the token, no call is served: not /info, not /services, not an action', async (t) => {
  const pidBefore = await pidOf(node.id);
  t.ok(pidBefore !== null, `${node.id} has a pid`);
  const wrong = [undefined, 'Bearer ', `Bearer ${stack.controlToken}x`, `Bearer ${stack.controlToken.slice(0, -1)}`, stack.controlToken,
    `Basic ${Buffer.from(`x:${stack.controlToken}`).toString('base64')}`, `Bearer ${'a'.repeat(1_000)}`];
  const calls: Array<[string, 'GET' | 'POST']> = [['/info', 'GET'], ['/services', 'GET'], [`/nodes/${node.id}/kill`, 'POST'],
    ['/nginx/reload', 'POST'], ['/nope', 'GET']];
  for (const [path, method] of calls) {
    for (const authorization of wrong) {
      const what = `${method} ${path} with ${authorization === undefined ? 'no Authorization' : JSON.stringify(authorization.slice(0, 12))}`;
      const res = await raw(path, method, authorization);
      t.equal(res.status, 401, what);
      t.match(res.contentType, /^application\/problem\+json/, what);
      t.equal(res.body.code, 'control_unauthorized', what);
      for (const token of Object.values(stack.internalTokens)) t.notOk(JSON.stringify(res.body).includes(token), `${what}: no secret in the answer`);
    }
  }
  t.equal(await pidOf(node.id), pidBefore, `${node.id} was not killed`);
  // The client passes the token: the same calls work.
  t.same(await callControl(stack, '/info', 'GET'), stack);
  const refused = await callControl({ controlUrl: stack.controlUrl, controlToken: 'not-the-token' }, '/info', 'GET').then(() => undefined, (error: unknown) => error);
  t.ok(refused instanceof ControlError && refused.status === 401, 'the client with a wrong token: ControlError 401');
});

t.test('node environment overrides: only the allow-listed variables, with values of their shape', async (t) => {
  // A start of a running node does not restart it; without a body it clears any override.
  t.teardown(() => control(`/nodes/${node.id}/start`).then(() => {}));
  const pidBefore = await pidOf(node.id);
  t.same(Object.keys(nodeEnvOverridesAllowed), ['RINGPAY_RELAY_BACKLOG_EVENTS_MAX'], 'what faults/kinds.ts uses, nothing more');
  const refused: Record<string, string>[] = [
    { RINGPAY_API_KEYS_FILE: '/tmp/attacker-keys.json' },
    { RINGPAY_INTERNAL_SERVICES: `ops:${'0'.repeat(64)}` },
    { RINGPAY_DATA_DIR: '/tmp/elsewhere' },
    { RINGPAY_WEBHOOK_SECRET_SANDBOX: 'attacker-secret-0123456789' },
    { NODE_OPTIONS: '--require /tmp/evil.js' },
    { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '5', RINGPAY_HOST: '0.0.0.0' },
    { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '5; rm -rf /' },
    { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '' },
    { __proto__: '1', constructor: '1' } as unknown as Record<string, string>,
    JSON.parse('{"__proto__": "1"}') as Record<string, string>,
  ];
  for (const env of refused) {
    for (const action of ['start', 'restart']) {
      const res = await raw(`/nodes/${node.id}/${action}`, 'POST', `Bearer ${stack.controlToken}`, { env });
      t.equal(res.status, 400, `${action} with ${JSON.stringify(env)}`);
      t.equal(res.body.code, 'env_override_refused', `${action} with ${JSON.stringify(env)}`);
    }
  }
  t.equal(await pidOf(node.id), pidBefore, `${node.id} was not restarted`);
  const allowed = await control(`/nodes/${node.id}/start`, 'POST', { env: { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '1000000' } });
  t.match(allowed, { ok: true, service: { running: true } }, 'an allow-listed override is taken');
  t.equal(await pidOf(node.id), pidBefore, 'start of a running node: no restart');
});
