// scripts/stack/service-user.ts: the dirs the runner makes for its services are 0700 and theirs,
// and the service user is never root (issue #17 part 7). No stack needed.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPassable, chownTree, ensurePrivateDir, makePassable, serviceUser } from '../../scripts/stack/service-user.ts';

const root = process.getuid?.() === 0;

t.test('ensurePrivateDir: every dir from the base down is 0700 and the owner’s', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'ringpay-service-user-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(base, 'nodes'), { mode: 0o755 });
  chmodSync(join(base, 'nodes'), 0o755); // left by an older run
  const user = serviceUser();
  const dir = ensurePrivateDir(base, join('nodes', 'n1', 'data'), user);
  for (const d of [join(base, 'nodes'), join(base, 'nodes', 'n1'), dir]) {
    const st = statSync(d);
    t.equal(st.mode & 0o777, 0o700, `${d} is 0700`);
    if (user) t.equal(st.uid, user.uid, `${d} is the service user's`);
  }
  t.throws(() => ensurePrivateDir(base, join('..', 'escape'), user), /leaves/);
});

t.test('chownTree gives a dir of an older (root) run to the service user', { skip: !root && 'needs root' }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'ringpay-service-user-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(base, 'data', 'deep'), { recursive: true });
  writeFileSync(join(base, 'data', 'deep', 'file'), 'x');
  const user = serviceUser()!;
  chownTree(join(base, 'data'), user);
  t.equal(statSync(join(base, 'data', 'deep', 'file')).uid, user.uid);
  t.equal(statSync(join(base, 'data', 'deep')).gid, user.gid);
});

t.test('the service user is never root; a dir it cannot pass through is refused with advice', { skip: !root && 'needs root' }, async (t) => {
  const user = serviceUser()!;
  t.not(user.uid, 0);
  t.not(user.gid, 0);
  const base = mkdtempSync(join(tmpdir(), 'ringpay-service-user-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(base, 'stack'));
  chmodSync(base, 0o700);
  t.throws(() => assertPassable(join(base, 'stack'), user), /cannot pass through .*chmod o\+x/);
  chmodSync(base, 0o711);
  t.doesNotThrow(() => assertPassable(join(base, 'stack'), user));
});

t.test('the code\'s dirs are made passable for the service user, search only, and only where needed', { skip: !root && 'needs root' }, async (t) => {
  const user = serviceUser()!;
  const base = mkdtempSync(join(tmpdir(), 'ringpay-service-user-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const repo = join(base, 'repo');
  mkdirSync(repo, { mode: 0o755 });
  chmodSync(base, 0o700);
  t.same(makePassable(repo, user), [base], 'the private checkout dir (mktemp -d) is the one changed');
  t.equal(statSync(base).mode & 0o777, 0o701, 'o+x only: passable, not listable');
  t.equal(statSync(repo).mode & 0o777, 0o755, 'a dir already passable is left as it was');
  t.doesNotThrow(() => assertPassable(repo, user));
  t.same(makePassable(repo, user), [], 'nothing left to change');
});
