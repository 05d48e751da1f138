// The local stack's documented test API keys. These are PUBLIC test keys (they are in the
// README): they only ever authenticate against a local/ephemeral stack. Nodes get only the
// SHA-256 of each key, via the keys file written here.
import { createHash } from 'node:crypto';
import { writeFileSync, renameSync } from 'node:fs';

export const demoMerchantId = 'merchant_demo';
export const otherMerchantId = 'merchant_other';
export const demoApiKey = 'sk_test_ringpay_demo_4eC39HqLyjWDarjtT1zdp7dc';
export const otherApiKey = 'sk_test_ringpay_other_9Xa81KdPq2LmZt7RwBv3Nc0e';

export interface ApiKeyEntry {
  merchant_id: string;
  key_sha256: string;
  label: string;
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

export function renderApiKeysFile(): ApiKeysFile {
  return {
    keys: [
      { merchant_id: demoMerchantId, key_sha256: sha256Hex(demoApiKey), label: 'demo' },
      { merchant_id: otherMerchantId, key_sha256: sha256Hex(otherApiKey), label: 'other' },
    ],
  };
}

/** Writes the keys file atomically (nodes may read it at any time). */
export function writeApiKeysFile(path: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(renderApiKeysFile(), null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
}
