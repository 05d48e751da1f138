// The field key ring file, by hand (issue #17 part 7; SECURITY.md):
//   node scripts/field-keys.ts init <file>             a new ring with one key (refuses an existing file)
//   node scripts/field-keys.ts add <file> [key-id]     adds a key, not active yet (rotation step 1)
//   node scripts/field-keys.ts activate <file> <key-id> makes a listed key the one that seals (step 2)
//   node scripts/field-keys.ts rotate <file> [key-id]  both at once; old keys stay either way
//   node scripts/field-keys.ts show <file>             key ids and the active one (never the keys)
// The file is written 0600 (owned by the file's current owner). Processes read it at start. A
// rotation with no window: add, restart processors and nodes (they now open the new key's
// values; the notifier re-reads the file by itself), activate, restart the nodes (they now seal with it). Never remove a key while data
// sealed with it is kept (LevelDB, Kafka's retention, Postgres).
import { existsSync, statSync } from 'node:fs';
import { KeyRing, newFieldKey, type FieldKeysFile } from '../lib/field-crypto.ts';
import { readFileSync } from 'node:fs';
import { activateFieldKey, addFieldKey, newKeyId, rotateFieldKeysFile, writeFieldKeysFile } from './stack/field-keys.ts';

const [command, file, keyId] = process.argv.slice(2);
if (!command || !file || !['init', 'add', 'activate', 'rotate', 'show'].includes(command)) {
  console.error('usage: node scripts/field-keys.ts init|add|activate|rotate|show <file> [key-id]');
  process.exit(2);
}
if (command === 'init') {
  if (existsSync(file)) {
    console.error(`${file} exists: rotate it instead (replacing it would make its data unreadable)`);
    process.exit(1);
  }
  const id = keyId ?? newKeyId();
  writeFieldKeysFile(file, { active: id, keys: [newFieldKey(id)] }, null);
  console.log(`created ${file}, active key ${id}`);
} else if (command === 'show') {
  const ring = KeyRing.fromFile(file);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as FieldKeysFile;
  console.log(JSON.stringify({ active: ring.activeKeyId, keys: parsed.keys.map((k) => k.id) }));
} else {
  // Keep the file's owner (the service user when the stack runs as root).
  const stat = statSync(file);
  const owner = process.getuid?.() === 0 ? { name: String(stat.uid), uid: stat.uid, gid: stat.gid } : null;
  if (command === 'add') {
    console.log(`added key ${addFieldKey(file, owner, keyId ?? newKeyId())} to ${file} (not active): restart processors and nodes, then activate it (the notifier re-reads the file by itself)`);
  } else if (command === 'activate') {
    if (!keyId) throw new Error('activate needs a key id');
    activateFieldKey(file, owner, keyId);
    console.log(`key ${keyId} active in ${file}: restart the nodes`);
  } else {
    const id = rotateFieldKeysFile(file, owner, keyId ?? newKeyId());
    console.log(`rotated ${file}: active key ${id}; restart processors, then nodes (the notifier re-reads the file by itself)`);
  }
}
