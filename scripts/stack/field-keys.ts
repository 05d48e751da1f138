// The stack's field key ring file (lib/field-crypto.ts): made once per stack dir, kept across
// restarts (a persistent stack's data was sealed with it), 0600, owned by the service user.
// Rotation adds a key and makes it active; the old keys stay so old data still opens.
import { chownSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { KeyRing, newFieldKey, withNewActiveKey, type FieldKeysFile } from '../../lib/field-crypto.ts';
import type { ServiceUser } from './service-user.ts';

export const fieldKeysFileName = 'field-keys.json';

/** A key id that says when it was made: `k<UTC yyyymmddhhmmss>`. */
export function newKeyId(now = new Date()): string {
  return `k${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
}

/** Writes the keys file atomically, 0600 (a new temp file, so the mode holds), owned by `owner`. */
export function writeFieldKeysFile(path: string, file: FieldKeysFile, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): void {
  void new KeyRing(file); // never write a ring that would not load
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  if (owner) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
}

/** The keys file at `path`, made with one fresh key if missing. Returns its active key id. */
export function ensureFieldKeysFile(path: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): string {
  if (!existsSync(path)) {
    const id = newKeyId();
    writeFieldKeysFile(path, { active: id, keys: [newFieldKey(id)] }, owner);
  }
  else if (owner) chownSync(path, owner.uid, owner.gid);
  return KeyRing.fromFile(path).activeKeyId;
}

/**
 * Adds a new key without making it active (step 1 of a rotation with no window: restart every
 * reader with it, then activate it). Returns its id.
 */
export function addFieldKey(path: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null, id = newKeyId()): string {
  const current = JSON.parse(readFileSync(path, 'utf8')) as FieldKeysFile;
  if (current.keys.some((k) => k.id === id)) throw new Error(`key id ${id} already in ${path}`);
  writeFieldKeysFile(path, { active: current.active, keys: [...current.keys, newFieldKey(id)] }, owner);
  return id;
}

/** Makes a listed key the one that seals (step 2). */
export function activateFieldKey(path: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null, id: string): void {
  const current = JSON.parse(readFileSync(path, 'utf8')) as FieldKeysFile;
  writeFieldKeysFile(path, { ...current, active: id }, owner);
}

/**
 * Adds a new key and makes it active at once. Nodes and processors read the file at start: restart them
 * to seal with the new key (every process opens old and new values either way once restarted;
 * a process still on the old ring cannot open what the new key sealed, so restart readers —
 * processors — before or with the writers, the nodes).
 */
export function rotateFieldKeysFile(path: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null, id = newKeyId()): string {
  const current = JSON.parse(readFileSync(path, 'utf8')) as FieldKeysFile;
  writeFieldKeysFile(path, withNewActiveKey(current, newFieldKey(id)), owner);
  return id;
}
