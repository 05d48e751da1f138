// Who the stack's services run as, and the modes of what the runner creates (issue #17 part 7).
//
// Run as root (the demo and test scripts are, to install packages), the runner still runs no
// service as root: the payment nodes, processors, sandbox PSP, reconciler and Kafka are spawned
// with the uid/gid of an unprivileged system user (`ringpay`, created if missing; another with
// RINGPAY_SERVICE_USER), nginx's workers run as it (`user` directive; the master stays root only
// to open its logs and read its config), and Postgres as `postgres` (it refuses root itself).
// Run as anyone else, every service runs as that user.
//
// Modes: the runner sets umask 077, so every file it and its children create is 0600 and every
// dir 0700 (logs, LevelDB, Kafka's log dirs, secrets). When root, the stack dir itself is 0711
// (others may pass through to their own 0700 dir, not list it), and each service's dir is
// owned by its user.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { lookupSystemUser } from './util.ts';

export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
  /** Its primary group's name (nginx's `user` directive takes names). */
  group: string;
}

export const defaultServiceUserName = 'ringpay';
/** What the runner's own files get: owner only. */
export const privateUmask = 0o077;
export const privateDirMode = 0o700;
export const privateFileMode = 0o600;
/** The stack dir when root: service users pass through to their own dirs, nobody lists it. */
export const sharedStackDirMode = 0o711;

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let resolved: ServiceUser | null | undefined;

/**
 * The unprivileged user services run as when the runner is root (created as a system user with
 * no login shell and no home if missing); null when the runner is not root (services then run as
 * the runner's user, which is not root).
 */
export function serviceUser(env: NodeJS.ProcessEnv = process.env): ServiceUser | null {
  if (resolved !== undefined) return resolved;
  if (!isRoot()) return (resolved = null);
  const name = env.RINGPAY_SERVICE_USER || defaultServiceUserName;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`RINGPAY_SERVICE_USER ${JSON.stringify(name)} is not a user name`);
  let user = lookupSystemUser(name);
  if (user === undefined) {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name], { stdio: 'pipe' });
    user = lookupSystemUser(name);
    if (user === undefined) throw new Error(`useradd ${name} did not create the user`);
  }
  if (user.uid === 0 || user.gid === 0) throw new Error(`service user ${name} has uid or gid 0: pick an unprivileged one (RINGPAY_SERVICE_USER)`);
  return (resolved = { name, uid: user.uid, gid: user.gid, group: groupName(user.gid) });
}

function groupName(gid: number): string {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && Number(f[2]) === gid && f[0]) return f[0];
  }
  throw new Error(`no group with gid ${gid} in /etc/group`);
}

/**
 * Makes `base/rel` and every dir between them 0700, owned by `owner` (when given): a service
 * must be able to enter each of them, and nobody else. Missing dirs are created.
 */
export function ensurePrivateDir(base: string, rel: string, owner: ServiceUser | null): string {
  const parts = rel.split(sep).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new Error(`ensurePrivateDir: ${rel} leaves ${base}`);
  let dir = base;
  for (const part of parts) {
    dir = join(dir, part);
    mkdirSync(dir, { recursive: true, mode: privateDirMode });
    chmodSync(dir, privateDirMode);
    if (owner) chownSync(dir, owner.uid, owner.gid);
  }
  return dir;
}

/**
 * Gives `owner` everything under `path` (files a previous run created as root, e.g. an older
 * stack dir), without following symlinks. A no-op without an owner.
 */
export function chownTree(path: string, owner: ServiceUser | null): void {
  if (!owner || !existsSync(path)) return;
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  if (stat.uid !== owner.uid || stat.gid !== owner.gid) chownSync(path, owner.uid, owner.gid);
  if (stat.isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), owner);
}

/** Whether `user` may pass through (search) directory `d`, by owner, group and other bits. */
function passable(d: string, user: ServiceUser): boolean {
  const st = statSync(d);
  return st.uid === user.uid ? (st.mode & 0o100) !== 0 : st.gid === user.gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
}

/**
 * Lets `user` reach the code it runs (the repo: node_modules' Node, the sources, .cache's Kafka
 * jars) when the runner is root: every ancestor of `dir` it cannot pass through gets o+x, search
 * only (nobody may list it). A checkout in a private temp dir (`mktemp -d`, 0700) is the usual
 * case; without this every service would fail with EACCES. Returns the dirs it changed.
 */
export function makePassable(dir: string, user: ServiceUser): string[] {
  const changed: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    if (!passable(d, user)) {
      chmodSync(d, (statSync(d).mode & 0o7777) | 0o001);
      changed.push(d);
    }
    if (d === dirname(d)) return changed;
  }
}

/**
 * The service user must pass through every ancestor of the stack dir to reach its own dirs;
 * otherwise every service fails with EACCES far from the cause. Checked at start, with advice.
 */
export function assertPassable(dir: string, user: ServiceUser): void {
  for (let d = dir; ; d = dirname(d)) {
    if (!passable(d, user)) {
      throw new Error(`the service user ${user.name} (uid ${user.uid}) cannot pass through ${d} (mode ${(statSync(d).mode & 0o777).toString(8)}): use a stack dir whose parents are world-passable, or chmod o+x ${d}`);
    }
    if (d === dirname(d)) return;
  }
}

/** True when `path` is `dir` or inside it. */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep));
}
