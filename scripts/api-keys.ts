// Merchants' API keys, for operators: create a merchant, issue, list, roll and revoke keys, in the
// keys file every payment node and the reporting service read (digests only; they pick a change up
// within apiKeysPollIntervalMs, 2 s, without a restart or a signal).
//
//   node scripts/api-keys.ts [--file <keys file>] create-merchant <merchant_id> [--label <text>]
//   node scripts/api-keys.ts [--file …] issue <merchant_id> [--scope full|read] [--label <text>]
//   node scripts/api-keys.ts [--file …] list [<merchant_id>] [--json]
//   node scripts/api-keys.ts [--file …] roll <key_id> [--grace-hours <n>]
//   node scripts/api-keys.ts [--file …] revoke <key_id>
//
// The keys file: --file, else RINGPAY_API_KEYS_FILE, else the local stack's .stack/local/api-keys.json.
// A new key's secret is printed once, on stdout, and stored nowhere: only its SHA-256. A key is
// named by its id (`key_` + the first 12 hex digits of its digest), never by its secret. Rolling
// issues a new key with the same merchant, scope and label and lets the old one work until the
// grace period ends (default 24 h; 0 = revoked at once). Every change rewrites the file atomically
// (write, then rename) under a lock file, so two operators never lose each other's change.
// Exit codes: 0 done, 1 refused (unknown merchant or key, merchant exists), 2 usage or a bad file.

import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { apiKeyScopes, parseKeysFile, type ApiKeyScope, type KeysFileEntry } from '../payment-svc/api-keys.ts'
import { sha256Hex, writeApiKeysFile } from './stack/api-keys.ts'
import { repoRoot } from './stack/util.ts'

/** Bounds of the CLI, units last. */
export const apiKeysCliLimits = {
  /** How long a change waits for another operator's lock, and when a lock counts as abandoned. */
  lockWaitMs: 5_000,
  lockStaleMs: 60_000,
  lockPollIntervalMs: 50,
  graceHoursDefault: 24,
  graceHoursMax: 24 * 30,
  labelLengthMax: 100,
} as const

const merchantIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const keyIdPattern = /^key_[0-9a-f]{12}$/

class CliError extends Error {
  readonly exitCode: 1 | 2
  constructor (exitCode: 1 | 2, message: string) {
    super(message)
    this.exitCode = exitCode
  }
}

export function keyIdOf (digest: string): string {
  return `key_${digest.slice(0, 12)}`
}

/** A new secret: 32 random bytes, base64url, with a prefix that says what it is. */
export function newSecret (): string {
  return `sk_live_${randomBytes(32).toString('base64url')}`
}

function readEntries (file: string): KeysFileEntry[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new CliError(2, `${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  try {
    // The nodes' own parser: a file this CLI accepts is one they accept.
    parseKeysFile(file, text)
  } catch (error) {
    throw new CliError(2, (error as Error).message)
  }
  return (JSON.parse(text) as { keys: KeysFileEntry[] }).keys
}

async function withLock<T> (file: string, change: () => T): Promise<T> {
  const lock = `${file}.lock`
  const deadline = Date.now() + apiKeysCliLimits.lockWaitMs
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600))
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      try {
        if (Date.now() - statSync(lock).mtimeMs > apiKeysCliLimits.lockStaleMs) rmSync(lock, { force: true })
      } catch { /* gone meanwhile */ }
      if (Date.now() > deadline) throw new CliError(2, `${lock} is held by another change; retry, or remove it if no other change is running`)
      await new Promise((resolve) => setTimeout(resolve, apiKeysCliLimits.lockPollIntervalMs))
    }
  }
  try {
    return change()
  } finally {
    rmSync(lock, { force: true })
  }
}

function save (file: string, entries: KeysFileEntry[]): void {
  const text = JSON.stringify({ keys: entries }, null, 2) + '\n'
  parseKeysFile(file, text) // never write a file the nodes would refuse
  writeApiKeysFile(file, text)
}

function entryFor (entries: readonly KeysFileEntry[], keyId: string): KeysFileEntry {
  if (!keyIdPattern.test(keyId)) throw new CliError(2, `${keyId}: a key id is key_ and 12 hex digits (see list)`)
  const found = entries.filter((e) => keyIdOf(e.key_sha256) === keyId)
  if (found.length === 0) throw new CliError(1, `${keyId}: no such key`)
  if (found.length > 1) throw new CliError(2, `${keyId}: names ${found.length} keys; edit the file`)
  return found[0]!
}

function newEntry (merchantId: string, scope: ApiKeyScope, label: string | undefined, nowMs: number): { entry: KeysFileEntry, secret: string } {
  const secret = newSecret()
  const entry: KeysFileEntry = { merchant_id: merchantId, key_sha256: sha256Hex(secret), created_at: new Date(nowMs).toISOString() }
  if (label !== undefined) entry.label = label
  if (scope !== 'full') entry.scope = scope
  return { entry, secret }
}

export interface CliResult { stdout: string, stderr?: string, exitCode: 0 | 1 | 2 }

/** Runs one command; never exits the process (the tests call it). */
export async function runApiKeysCli (argv: readonly string[], env: NodeJS.ProcessEnv = process.env, nowMs: number = Date.now()): Promise<CliResult> {
  try {
    const { values: v, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { file: { type: 'string' }, scope: { type: 'string' }, label: { type: 'string' }, 'grace-hours': { type: 'string' }, json: { type: 'boolean' } },
    })
    const file = v.file ?? env.RINGPAY_API_KEYS_FILE ?? join(repoRoot, '.stack', 'local', 'api-keys.json')
    const [command, arg] = positionals
    const label = v.label
    if (label !== undefined && (label.length === 0 || label.length > apiKeysCliLimits.labelLengthMax)) {
      throw new CliError(2, `--label is 1..${apiKeysCliLimits.labelLengthMax} characters`)
    }
    const scope = (v.scope ?? 'full') as ApiKeyScope
    if (!(apiKeyScopes as readonly string[]).includes(scope)) throw new CliError(2, `--scope is one of ${apiKeyScopes.join(', ')}`)
    const merchantArg = (): string => {
      if (arg === undefined || !merchantIdPattern.test(arg)) throw new CliError(2, `${command} needs a merchant id (1..64 of [A-Za-z0-9_-])`)
      return arg
    }
    switch (command) {
      case 'create-merchant':
      case 'issue': {
        const merchantId = merchantArg()
        return await withLock(file, () => {
          const entries = readEntries(file)
          const exists = entries.some((e) => e.merchant_id === merchantId)
          if (command === 'create-merchant' && exists) throw new CliError(1, `${merchantId} exists; issue another key with: issue ${merchantId}`)
          if (command === 'issue' && !exists) throw new CliError(1, `${merchantId}: no such merchant (create-merchant ${merchantId})`)
          const { entry, secret } = newEntry(merchantId, scope, label, nowMs)
          save(file, [...entries, entry])
          const id = keyIdOf(entry.key_sha256)
          return { exitCode: 0, stdout: v.json === true ? JSON.stringify({ key_id: id, merchant_id: merchantId, scope, secret }) + '\n' : `${id} ${merchantId} ${scope}\n${secret}\n(the secret is shown once; only its SHA-256 is kept)\n` }
        })
      }
      case 'list': {
        const entries = readEntries(file).filter((e) => arg === undefined || e.merchant_id === arg)
        const rows = entries.map((e) => ({
          key_id: keyIdOf(e.key_sha256), merchant_id: e.merchant_id, scope: e.scope ?? 'full', label: e.label ?? '',
          created_at: e.created_at ?? '', expires_at: e.expires_at ?? '', expired: e.expires_at !== undefined && Date.parse(e.expires_at) <= nowMs,
        }))
        if (v.json === true) return { exitCode: 0, stdout: JSON.stringify(rows) + '\n' }
        return { exitCode: 0, stdout: rows.map((r) => `${r.key_id}  ${r.merchant_id}  ${r.scope}  ${r.label || '-'}  created ${r.created_at || '-'}${r.expires_at ? `  ${r.expired ? 'expired' : 'expires'} ${r.expires_at}` : ''}`).join('\n') + (rows.length > 0 ? '\n' : '') }
      }
      case 'roll': {
        const graceHours = v['grace-hours'] === undefined ? apiKeysCliLimits.graceHoursDefault : Number(v['grace-hours'])
        if (!Number.isFinite(graceHours) || graceHours < 0 || graceHours > apiKeysCliLimits.graceHoursMax) {
          throw new CliError(2, `--grace-hours is 0..${apiKeysCliLimits.graceHoursMax}`)
        }
        return await withLock(file, () => {
          const entries = readEntries(file)
          const old = entryFor(entries, String(arg))
          const { entry, secret } = newEntry(old.merchant_id, old.scope ?? 'full', old.label, nowMs)
          const graceEndsMs = nowMs + graceHours * 3_600_000
          // A roll never extends an expiry already set.
          const oldExpiresMs = old.expires_at === undefined ? Number.POSITIVE_INFINITY : Date.parse(old.expires_at)
          const rolled = { ...old, expires_at: new Date(Math.min(oldExpiresMs, graceEndsMs)).toISOString() }
          save(file, [...entries.map((e) => (e === old ? rolled : e)), entry])
          const id = keyIdOf(entry.key_sha256)
          return { exitCode: 0, stdout: v.json === true ? JSON.stringify({ key_id: id, rolled_key_id: arg, old_expires_at: rolled.expires_at, secret }) + '\n' : `${id} replaces ${arg} (which works until ${rolled.expires_at})\n${secret}\n(the secret is shown once; only its SHA-256 is kept)\n` }
        })
      }
      case 'revoke':
        return await withLock(file, () => {
          const entries = readEntries(file)
          const gone = entryFor(entries, String(arg))
          save(file, entries.filter((e) => e !== gone))
          return { exitCode: 0, stdout: v.json === true ? JSON.stringify({ key_id: arg, merchant_id: gone.merchant_id, revoked: true }) + '\n' : `${arg} revoked (${gone.merchant_id})\n` }
        })
      default:
        throw new CliError(2, 'usage: node scripts/api-keys.ts [--file <keys file>] create-merchant|issue|list|roll|revoke … (see the top of scripts/api-keys.ts)')
    }
  } catch (error) {
    if (error instanceof CliError) return { exitCode: error.exitCode, stdout: '', stderr: error.message }
    if ((error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return { exitCode: 2, stdout: '', stderr: (error as Error).message }
    throw error
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runApiKeysCli(process.argv.slice(2))
  process.stdout.write(result.stdout)
  if (result.stderr !== undefined) process.stderr.write(`${result.stderr}\n`)
  process.exitCode = result.exitCode
}
