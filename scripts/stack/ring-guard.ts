// The payment nodes' places on nginx's consistent-hash ring, kept stable for a persistent stack dir.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A persistent dir whose payments sit on the ring under other node addresses. */
export class RingMovedError extends Error {
  readonly code = 'ring_moved';
}

/**
 * nginx places each key on the ring by its node's address as written in the upstream block, so a
 * persistent dir must keep the same addresses, or keys would move to nodes that do not hold their
 * payments. The addresses are recorded in <dir>/ring.json; the same number of nodes at other
 * addresses (a dir moved elsewhere, or one from before the nodes served on Unix sockets) is refused
 * rather than silently moving keys. (A changed node count is warned about in choosePorts.)
 */
export function guardRing(dir: string | null, servers: string[]): string[] {
  if (dir === null) return servers;
  const file = join(dir, 'ring.json');
  const nodesDirHasData = existsSync(join(dir, 'nodes', 'n1', 'data', 'CURRENT'));
  const recorded: string[] | undefined = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { servers: string[] }).servers : undefined;
  const moved = recorded === undefined
    ? nodesDirHasData // payments stored under addresses nobody recorded (an older stack dir)
    : recorded.length === servers.length && recorded.some((s, i) => s !== servers[i]);
  if (moved) {
    throw new RingMovedError(`${dir} holds payments placed on nginx's ring by other node addresses (${recorded?.join(', ') ?? 'TCP ports, before the nodes served on Unix sockets'}); ` +
      `now ${servers.join(', ')}: keys would move to nodes that do not hold them. Use a new --dir (or remove ${dir} if its payments are not needed).`);
  }
  writeFileSync(file, JSON.stringify({ servers }, null, 2) + '\n');
  return servers;
}
