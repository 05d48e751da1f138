// The info file and the control API agree; the test API keys file matches the documented keys.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoApiKey, demoReadApiKey, otherApiKey, sha256Hex, type ApiKeysFile } from '../../scripts/stack/api-keys.ts';
import { control, loadStackInfo, type StackInfo } from '../helpers/stack.ts';

const stack = loadStackInfo();

t.test('control GET /info returns the info file', async (t) => {
  t.same(await control<StackInfo>('/info', 'GET'), stack);
});

t.test('every service is running', async (t) => {
  const { services } = await control<{ services: { name: string; running: boolean }[] }>('/services', 'GET');
  const names = services.map((s) => s.name).sort();
  t.same(names, ['admin', 'console', 'kafka', 'nginx', ...stack.nodes.map((n) => n.id), 'nimbus', 'notifier', 'postgres', 'prometheus', 'psp', 'reconciler', 'reporting', ...stack.processors.map((p) => p.id)].sort());
  for (const s of services) t.ok(s.running, `${s.name} running`);
});

t.test('unknown control routes are 404', async (t) => {
  await t.rejects(control('/nodes/n999/kill'), /: 404 /);
  await t.rejects(control('/nodes/n1/explode'), /: 404 /);
});

t.test('api keys: documented plaintext keys, only their hashes in the keys file', async (t) => {
  t.same(stack.apiKeys, { merchant_demo: demoApiKey, merchant_other: otherApiKey, merchant_demo_read: demoReadApiKey });
  const file = JSON.parse(readFileSync(stack.apiKeysFile ?? join(stack.dir, 'api-keys.json'), 'utf8')) as ApiKeysFile;
  // Other tests add merchants and keys of their own (test/api/admin-keys.test.ts): the test keys are the first three.
  t.same({ keys: file.keys.slice(0, 3) }, {
    keys: [
      { merchant_id: 'merchant_demo', key_sha256: sha256Hex(demoApiKey), label: 'demo' },
      { merchant_id: 'merchant_other', key_sha256: sha256Hex(otherApiKey), label: 'other' },
      { merchant_id: 'merchant_demo', key_sha256: sha256Hex(demoReadApiKey), label: 'demo read-only', scope: 'read' },
    ],
  });
  t.notMatch(JSON.stringify(file), /sk_(test|live)_/, 'no plaintext key in the file');
});

t.test('nodes answer /readyz on their admin ports', async (t) => {
  for (const n of stack.nodes) {
    const res = await fetch(`http://127.0.0.1:${n.adminPort}/readyz`, { signal: AbortSignal.timeout(5_000) });
    await res.body?.cancel();
    t.equal(res.status, 200, `${n.id} ready`);
  }
});
