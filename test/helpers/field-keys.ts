// A key ring for unit tests (fresh random keys per process; nothing here is a real secret).

import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KeyRing, newFieldKey, type FieldKeysFile } from '../../lib/field-crypto.ts'

export const testFieldKeysFile: FieldKeysFile = { active: 'test-1', keys: [newFieldKey('test-1')] }
export const testKeyRing = new KeyRing(testFieldKeysFile)

/** Writes the test key ring to `<dir>/field-keys.json` (0600) for a node or processor spawned by a test. */
export function writeTestFieldKeysFile (dir: string): string {
  const path = join(dir, 'field-keys.json')
  writeFileSync(path, JSON.stringify(testFieldKeysFile), { mode: 0o600 })
  chmodSync(path, 0o600)
  return path
}
