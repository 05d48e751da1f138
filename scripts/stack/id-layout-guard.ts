// Checkout ids scoped per merchant (issue #17 part 5), kept apart from a persistent stack dir made
// before: its nodes keyed payments by checkout id alone (LevelDB `p/<checkout_id>`), which the
// nodes no longer read, so such a dir is refused at start rather than half-read.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A persistent dir whose payments are keyed by checkout id alone (from before issue #17 part 5). */
export class CheckoutIdsGlobalError extends Error {
  readonly code = 'checkout_ids_global';
}

const markerFile = 'checkout-ids.json';

/**
 * A dir with node data and no marker was made before checkout ids were per merchant: refused
 * (the nodes would refuse their stores too: payment-svc/store.ts StoreLayoutError). A new dir, or
 * one already marked, gets the marker and goes on.
 */
export function guardCheckoutIdLayout(dir: string | null): void {
  if (dir === null) return;
  const marker = join(dir, markerFile);
  if (existsSync(marker)) return;
  if (existsSync(join(dir, 'nodes', 'n1', 'data', 'CURRENT'))) {
    throw new CheckoutIdsGlobalError(`${dir} holds payments keyed by checkout id alone, from before checkout ids were scoped per merchant ` +
      `(issue #17 part 5): the nodes cannot read them. Remove ${dir} (its payments, Postgres and PSP data go with it), or pass another --dir.`);
  }
  writeFileSync(marker, JSON.stringify({ checkout_ids: 'per_merchant' }, null, 2) + '\n');
}
