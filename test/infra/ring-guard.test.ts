// guardRing: a persistent stack dir keeps its nodes' addresses on nginx's ring, or refuses to start.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guardRing, RingMovedError } from '../../scripts/stack/ring-guard.ts';

function stackDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ring-guard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const ring = (dir: string, n: number) => Array.from({ length: n }, (_, i) => `unix:${dir}/nodes/n${i + 1}/public.sock`);

t.test('a new dir records its ring; the same ring again is accepted', async (t) => {
  const dir = stackDir(t);
  t.same(guardRing(dir, ring(dir, 3)), ring(dir, 3));
  t.same(JSON.parse(readFileSync(join(dir, 'ring.json'), 'utf8')).servers, ring(dir, 3));
  t.same(guardRing(dir, ring(dir, 3)), ring(dir, 3), 'restart on the same addresses');
});

t.test('the same nodes at other addresses are refused: keys would move', async (t) => {
  const dir = stackDir(t);
  guardRing(dir, ring(dir, 3));
  const moved = ring('/elsewhere', 3);
  t.throws(() => guardRing(dir, moved), { code: 'ring_moved' });
  t.ok((() => { try { guardRing(dir, moved) } catch (e) { return e instanceof RingMovedError } return false })(), 'a RingMovedError');
  t.same(JSON.parse(readFileSync(join(dir, 'ring.json'), 'utf8')).servers, ring(dir, 3), 'the recorded ring is kept');
});

t.test('an older dir with payments but no recorded ring (TCP-addressed nodes) is refused', async (t) => {
  const dir = stackDir(t);
  mkdirSync(join(dir, 'nodes', 'n1', 'data'), { recursive: true });
  writeFileSync(join(dir, 'nodes', 'n1', 'data', 'CURRENT'), 'MANIFEST-000001\n');
  t.throws(() => guardRing(dir, ring(dir, 3)), { code: 'ring_moved' });
});

t.test('a changed node count is recorded (choosePorts warns about it); an ephemeral dir is not guarded', async (t) => {
  const dir = stackDir(t);
  guardRing(dir, ring(dir, 3));
  t.same(guardRing(dir, ring(dir, 4)), ring(dir, 4));
  t.same(JSON.parse(readFileSync(join(dir, 'ring.json'), 'utf8')).servers, ring(dir, 4));
  t.same(guardRing(null, ring('/x', 2)), ring('/x', 2));
});
