// guardCheckoutIdLayout: a persistent stack dir whose nodes keyed payments by checkout id alone
// (before checkout ids were scoped per merchant, issue #17 part 5) is refused at start with a
// typed error; a new dir is marked and starts, and so does a marked one.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckoutIdsGlobalError, guardCheckoutIdLayout } from '../../scripts/stack/id-layout-guard.ts';

function stackDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'id-layout-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What a node leaves in its data dir (LevelDB's CURRENT file). */
function nodeData(dir: string): void {
  mkdirSync(join(dir, 'nodes', 'n1', 'data'), { recursive: true });
  writeFileSync(join(dir, 'nodes', 'n1', 'data', 'CURRENT'), 'MANIFEST-000001\n');
}

t.test('a new dir is marked; its nodes\' data later is its own', async (t) => {
  const dir = stackDir(t);
  guardCheckoutIdLayout(dir);
  t.ok(existsSync(join(dir, 'checkout-ids.json')));
  nodeData(dir);
  t.doesNotThrow(() => guardCheckoutIdLayout(dir), 'a restart of a marked dir');
});

t.test('node data without the mark (a dir from before) is refused with checkout_ids_global', async (t) => {
  const dir = stackDir(t);
  nodeData(dir);
  let error: unknown;
  try { guardCheckoutIdLayout(dir); } catch (e) { error = e; }
  t.ok(error instanceof CheckoutIdsGlobalError, 'a CheckoutIdsGlobalError');
  t.match(error, { code: 'checkout_ids_global', message: /Remove .*or pass another --dir/ });
  t.notOk(existsSync(join(dir, 'checkout-ids.json')), 'not marked: it stays refused');
});

t.test('an ephemeral stack (no persistent dir) is not checked', async (t) => {
  t.doesNotThrow(() => guardCheckoutIdLayout(null));
});
