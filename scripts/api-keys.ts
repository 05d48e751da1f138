// Merchants' API keys, for operators: create a merchant, issue, list, roll and revoke keys, in the
// keys file every payment node, the reporting service and the notifier read (digests only; they
// pick a change up within apiKeysPollIntervalMs, 2 s, without a restart or a signal). The admin
// API (admin/, through nginx's internal listener) does the same over HTTP; both change the file
// through admin/keys-file.ts, so they never lose each other's change.
//
//   node scripts/api-keys.ts [--file <keys file>] create-merchant <merchant_id> [--label <text>] [--scope full|read]
//   node scripts/api-keys.ts [--file …] issue <merchant_id> [--scope full|read] [--label <text>] [--expires-at <RFC 3339>]
//   node scripts/api-keys.ts [--file …] list [<merchant_id>] [--json]
//   node scripts/api-keys.ts [--file …] roll <key_id> [--grace-hours <n>]
//   node scripts/api-keys.ts [--file …] revoke <key_id>
//
// The keys file: --file, else RINGPAY_API_KEYS_FILE, else the local stack's
// .stack/local/merchant-keys/api-keys.json. A new key's secret is printed once, on stdout, and stored
// nowhere: only its SHA-256. A key is named by its id (`key_` + the first 12 hex digits of its
// digest), never by its secret. create-merchant records the merchant and issues its first key.
// Rolling issues a new key with the same merchant, scope, label and expiry and lets the old one
// work until the grace period ends (default 24 h; 0 = refused at once); only an active key rolls.
// Revoking keeps the key listed as revoked; the nodes refuse it. Every change is an audit line in
// api-keys-audit.log beside the file (operator: cli:<login name>).
// Exit codes: 0 done, 1 refused (unknown merchant or key, merchant exists, key not active, too
// many keys), 2 usage, a bad file, or the file busy.

import { userInfo } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { KeysFile, KeysFileError, keysFileLimits, type Actor, type KeysFileErrorCode } from '../admin/keys-file.ts'
import type { ApiKeyScope } from '../payment-svc/api-keys.ts'
import { repoRoot } from './stack/util.ts'

export { keyIdOf, newSecret } from '../admin/keys-file.ts'

/** Bounds of the CLI, units last. */
export const apiKeysCliLimits = {
  graceHoursDefault: keysFileLimits.graceMsDefault / 3_600_000,
  graceHoursMax: keysFileLimits.graceMsMax / 3_600_000,
} as const

/** Where the local stack keeps its keys file (scripts/stack.ts). */
export const localStackKeysFile = join(repoRoot, '.stack', 'local', 'merchant-keys', 'api-keys.json')

/** Refusals about what exists: exit 1. Everything else (usage, the file): exit 2. */
const refusalCodes: ReadonlySet<KeysFileErrorCode> = new Set(['merchant_exists', 'merchant_not_found', 'api_key_not_found', 'api_key_not_active', 'api_key_limit_reached'])

class UsageError extends Error {}

export interface CliResult { stdout: string, stderr?: string, exitCode: 0 | 1 | 2 }

const secretNote = '(the secret is shown once; only its SHA-256 is kept)'

/** Runs one command; never exits the process (the tests call it). */
export async function runApiKeysCli (argv: readonly string[], env: NodeJS.ProcessEnv = process.env, nowMs?: number): Promise<CliResult> {
  try {
    const { values: v, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { file: { type: 'string' }, scope: { type: 'string' }, label: { type: 'string' }, 'grace-hours': { type: 'string' }, 'expires-at': { type: 'string' }, json: { type: 'boolean' } },
    })
    const file = new KeysFile(v.file ?? env.RINGPAY_API_KEYS_FILE ?? localStackKeysFile, nowMs === undefined ? {} : { nowMs: () => nowMs })
    const actor: Actor = { operator: `cli:${userInfo().username}`, via: 'cli' }
    const [command, arg] = positionals
    const json = v.json === true
    const needArg = (what: string): string => {
      if (arg === undefined) throw new UsageError(`${command} needs a ${what}`)
      return arg
    }
    switch (command) {
      case 'create-merchant':
      case 'issue': {
        const { key, secret } = await file.issueKey(actor, {
          merchantId: needArg('merchant id'),
          scope: (v.scope ?? 'full') as ApiKeyScope,
          ...(v.label === undefined ? {} : { label: v.label }),
          ...(v['expires-at'] === undefined ? {} : { expiresAt: v['expires-at'] }),
          createMerchant: command === 'create-merchant',
        })
        return {
          exitCode: 0,
          stdout: json
            ? JSON.stringify({ key_id: key.id, merchant_id: key.merchant_id, scope: key.scope, expires_at: key.expires_at, secret }) + '\n'
            : `${key.id} ${key.merchant_id} ${key.scope}${key.expires_at === null ? '' : ` expires ${key.expires_at}`}\n${secret}\n${secretNote}\n`,
        }
      }
      case 'list': {
        const rows = file.allKeys(arg).map((k) => ({
          key_id: k.id, merchant_id: k.merchant_id, scope: k.scope, label: k.label ?? '', created_at: k.created_at ?? '',
          expires_at: k.expires_at ?? '', expired: k.state === 'expired', state: k.state, revoked_at: k.revoked_at ?? '', rolled_to: k.rolled_to ?? '',
        }))
        if (json) return { exitCode: 0, stdout: JSON.stringify(rows) + '\n' }
        return {
          exitCode: 0,
          stdout: rows.map((r) => `${r.key_id}  ${r.merchant_id}  ${r.scope}  ${r.state}  ${r.label || '-'}  created ${r.created_at || '-'}` +
            `${r.expires_at ? `  ${r.expired ? 'expired' : 'expires'} ${r.expires_at}` : ''}${r.rolled_to ? `  rolled to ${r.rolled_to}` : ''}${r.revoked_at ? `  revoked ${r.revoked_at}` : ''}`).join('\n') + (rows.length > 0 ? '\n' : ''),
        }
      }
      case 'roll': {
        const graceHours = v['grace-hours'] === undefined ? apiKeysCliLimits.graceHoursDefault : Number(v['grace-hours'])
        if (!Number.isFinite(graceHours) || graceHours < 0 || graceHours > apiKeysCliLimits.graceHoursMax) {
          throw new UsageError(`--grace-hours is 0..${apiKeysCliLimits.graceHoursMax}`)
        }
        const keyId = needArg('key id')
        const { key, secret, rolled } = await file.rollKey(actor, keyId, Math.round(graceHours * 3_600_000))
        return {
          exitCode: 0,
          stdout: json
            ? JSON.stringify({ key_id: key.id, rolled_key_id: keyId, old_expires_at: rolled.expires_at, secret }) + '\n'
            : `${key.id} replaces ${keyId} (which works until ${rolled.expires_at})\n${secret}\n${secretNote}\n`,
        }
      }
      case 'revoke': {
        const keyId = needArg('key id')
        const { key, changed } = await file.revokeKey(actor, keyId)
        return {
          exitCode: 0,
          stdout: json
            ? JSON.stringify({ key_id: keyId, merchant_id: key.merchant_id, revoked: true, revoked_at: key.revoked_at, changed }) + '\n'
            : `${keyId} ${changed ? 'revoked' : 'was already revoked'} (${key.merchant_id}, ${key.revoked_at})\n`,
        }
      }
      default:
        throw new UsageError('usage: node scripts/api-keys.ts [--file <keys file>] create-merchant|issue|list|roll|revoke … (see the top of scripts/api-keys.ts)')
    }
  } catch (error) {
    if (error instanceof KeysFileError) return { exitCode: refusalCodes.has(error.code) ? 1 : 2, stdout: '', stderr: `${error.code}: ${error.message}` }
    if (error instanceof UsageError) return { exitCode: 2, stdout: '', stderr: error.message }
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
