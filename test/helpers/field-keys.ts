// A key ring for unit tests (fresh random keys per process; nothing here is a real secret).

import { KeyRing, newFieldKey, type FieldKeysFile } from '../../lib/field-crypto.ts'

export const testFieldKeysFile: FieldKeysFile = { active: 'test-1', keys: [newFieldKey('test-1')] }
export const testKeyRing = new KeyRing(testFieldKeysFile)
