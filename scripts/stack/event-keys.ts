// The stack's change-event signing keys (lib/event-signing.ts): one per node, made once per stack
// dir and kept (events signed with a key must still verify after a restart), 0600, owned by the
// service user. Processors read the whole file (RINGPAY_EVENT_KEYS_FILE); each node gets only its
// own key, in its environment (RINGPAY_EVENT_SIGNING_KEY). A node id new to the stack dir gets a
// key added.
import { chownSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { EventVerifier, newEventKey, type EventKeySpec, type EventKeysFile } from '../../lib/event-signing.ts';
import { newKeyId } from './field-keys.ts';
import type { ServiceUser } from './service-user.ts';

export const eventKeysFileName = 'event-keys.json';

function writeEventKeysFile(path: string, file: EventKeysFile, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): void {
  void new EventVerifier(file); // never write a file that would not load
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  if (owner) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
}

/** The keys file at `path` with a key for every node in `nodeIds`; returns each node's signing key (its last listed). */
export function ensureEventKeysFile(path: string, nodeIds: readonly string[], owner: Pick<ServiceUser, 'uid' | 'gid'> | null): Map<string, EventKeySpec> {
  const file: EventKeysFile = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as EventKeysFile : { keys: [] };
  const missing = nodeIds.filter((node) => !file.keys.some((k) => k.node === node));
  if (missing.length > 0 || !existsSync(path)) {
    writeEventKeysFile(path, { keys: [...file.keys, ...missing.map((node) => newEventKey(`${node}-${newKeyId()}`, node))] }, owner);
  } else if (owner) chownSync(path, owner.uid, owner.gid);
  const current = new Map<string, EventKeySpec>();
  for (const spec of (JSON.parse(readFileSync(path, 'utf8')) as EventKeysFile).keys) current.set(spec.node, spec);
  return current;
}
