// The local stack's documented test API keys. These are PUBLIC test keys (they are in the
// README): they only ever authenticate against a local/ephemeral stack. Nodes get only the
// SHA-256 of each key, via the keys file written here.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../admin/keys-file.ts';

export const demoMerchantId = 'merchant_demo';
export const otherMerchantId = 'merchant_other';
export const demoApiKey = 'sk_test_ringpay_demo_4eC39HqLyjWDarjtT1zdp7dc';
export const otherApiKey = 'sk_test_ringpay_other_9Xa81KdPq2LmZt7RwBv3Nc0e';
/** merchant_demo's restricted key (scope `read`: reads and reports only). */
export const demoReadApiKey = 'sk_test_ringpay_demo_read_7Hq2Wc9LpZ4xNv6Ts1Bk';

export interface ApiKeyEntry {
  merchant_id: string;
  key_sha256: string;
  label: string;
  scope?: 'full' | 'read';
}

export interface ApiKeysFile {
  keys: ApiKeyEntry[];
}

export const testApiKeys: Readonly<Record<string, string>> = {
  [demoMerchantId]: demoApiKey,
  [otherMerchantId]: otherApiKey,
};

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

const labels: Readonly<Record<string, string>> = { [demoMerchantId]: 'demo', [otherMerchantId]: 'other' };

/**
 * The keys file of the given test merchants' full keys (fewer = the others revoked); by default
 * every test merchant's, plus merchant_demo's restricted read key.
 */
export function renderApiKeysFile(merchantIds?: readonly string[]): ApiKeysFile {
  const keys: ApiKeyEntry[] = (merchantIds ?? Object.keys(testApiKeys)).map((merchantId) => {
    const key = testApiKeys[merchantId];
    if (key === undefined) throw new Error(`no test API key for ${merchantId}`);
    return { merchant_id: merchantId, key_sha256: sha256Hex(key), label: labels[merchantId] ?? merchantId };
  });
  if (merchantIds === undefined) keys.push({ merchant_id: demoMerchantId, key_sha256: sha256Hex(demoReadApiKey), label: 'demo read-only', scope: 'read' });
  return { keys };
}

/**
 * The stack's keys file at start: a new one holds the test keys; an existing one (a persistent
 * stack dir) keeps every key issued into it (scripts/api-keys.ts) and gets any missing test key
 * back. One that cannot be parsed is left as it is: the nodes then refuse every key (fail closed)
 * until an operator repairs it, and nothing here widens what it grants.
 */
export function ensureApiKeysFile(path: string, owner?: { uid: number; gid: number } | null): 'created' | 'kept' | 'updated' | 'unreadable' {
  if (!existsSync(path)) {
    writeApiKeysFile(path, undefined, owner);
    return 'created';
  }
  let current: ApiKeysFile;
  try {
    current = JSON.parse(readFileSync(path, 'utf8')) as ApiKeysFile;
    if (!Array.isArray(current?.keys)) return 'unreadable';
  } catch {
    return 'unreadable';
  }
  const have = new Set(current.keys.map((k) => k.key_sha256));
  const missing = renderApiKeysFile().keys.filter((k) => !have.has(k.key_sha256));
  if (missing.length === 0) return 'kept';
  writeApiKeysFile(path, JSON.stringify({ ...current, keys: [...current.keys, ...missing] }, null, 2) + '\n', owner);
  return 'updated';
}

/**
 * Writes the keys file atomically (nodes may read it at any time): the given file text, or the
 * file of the given test merchants. Nodes pick it up within apiKeysPollIntervalMs (or on SIGHUP,
 * `POST /admin/reload-keys`); a file they cannot use leaves them with no key at all (fail closed).
 * A whole-file write for the stack and the tests: key changes go through admin/keys-file.ts,
 * which serialises them.
 */
export function writeApiKeysFile(path: string, content?: readonly string[] | string, owner?: { uid: number; gid: number } | null): void {
  const text = typeof content === 'string' ? content : JSON.stringify(renderApiKeysFile(content), null, 2) + '\n';
  // Digests only, but nobody else needs them: 0600, owned by the nodes' user (a rewrite by root,
  // e.g. a test revoking a key, keeps the current owner so the nodes can still read it).
  writeFileAtomic(path, text, owner);
}
