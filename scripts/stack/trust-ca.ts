// Makes this process trust the stack's CA (the public listener's certificate, issue #17 part 3)
// besides the system's: every TLS client in it (fetch, undici, node:https) then verifies the
// stack's https URLs as usual, with no per-call option. For tests, the bench and the demo.

import { readFileSync } from 'node:fs';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';

const trusted = new Set<string>();

export function trustCaFile(caFile: string): void {
  if (trusted.has(caFile)) return;
  setDefaultCACertificates([...getCACertificates('default'), readFileSync(caFile, 'utf8')]);
  trusted.add(caFile);
}
