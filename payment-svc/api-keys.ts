// Merchant API keys. Only SHA-256 digests are stored; the file is re-read when it changes (polled),
// on SIGHUP or an admin call, so keys rotate without a restart. A request's merchant comes from its
// key, never its body. A key has a scope (`full`, or `read`: reads and reports only) and may
// expire (a rolled key keeps working until its `expires_at`, then is refused like an unknown one)
// or be revoked (`revoked_at`: refused at once, kept in the file for the listing). The operators'
// admin API (admin/) and `scripts/api-keys.ts` issue, list, revoke and roll keys in this file,
// both through admin/keys-file.ts.
//
// Fail closed: a file that cannot be read or is not a valid keys file leaves the registry with NO
// keys (`available` false), never with the previous set. A revocation is an edit of this file; an
// edit that breaks it must not keep the revoked key alive. The node answers every API key with
// 503 `api_keys_unavailable` until a valid file is loaded (`api-keys-reloader.ts`).

import { hash } from 'node:crypto'
import { open } from 'node:fs/promises'

export const apiKeyScopes = ['full', 'read'] as const
export type ApiKeyScope = typeof apiKeyScopes[number]

export interface KeysFileEntry {
  merchant_id: string
  key_sha256: string
  label?: string
  /** Absent = full. */
  scope?: ApiKeyScope
  created_at?: string
  /** ISO time after which the key is refused (a rolled key's grace period). */
  expires_at?: string
  /**
   * Set when an operator revoked the key: it grants nothing, whatever its expiry. The entry stays
   * so that listings show it (admin/keys-file.ts); only its digest is kept, as for any key.
   */
  revoked_at?: string
  /** A rolled key: when, and the id of the key that replaced it (it works until `expires_at`). */
  rolled_at?: string
  rolled_to?: string
}

interface KeysFile {
  keys: KeysFileEntry[]
}

/** What a key grants. */
export interface ApiKeyGrant {
  merchantId: string
  scope: ApiKeyScope
  /** Infinity when the key does not expire. */
  expiresAtMs: number
}

const merchantIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const digestPattern = /^[0-9a-f]{64}$/

/** Authorization headers remembered after one hash; bounded, emptied on reload. */
const resolvedHeadersMax = 1024
/** A keys file larger than this is refused unread: ~150 bytes per key, so ~28k keys fit in 4 MiB. */
export const apiKeysFileBytesMax = 4 * 1024 * 1024

/** Why the registry holds no keys. Stable: logged and sent as the problem's `reason`. */
export type ApiKeysUnavailableReason =
  | 'not_loaded' // nothing loaded yet
  | 'unreadable' // missing, no permission, I/O error
  | 'too_large'
  | 'invalid_json'
  | 'invalid_shape' // not {"keys": [...]}
  | 'invalid_entry' // an entry without a merchant id or a hex digest, or with a bad scope or expiry
  | 'duplicate_key' // one digest listed twice: which merchant would it be?

/**
 * A keys file that cannot be used. Its message never quotes the file: a malformed file may hold
 * a raw key pasted by mistake, and V8's JSON.parse messages quote the text around the error.
 */
export class ApiKeysError extends Error {
  readonly reason: ApiKeysUnavailableReason

  constructor (reason: ApiKeysUnavailableReason, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts)
    this.name = 'ApiKeysError'
    this.reason = reason
  }
}

async function readKeysFile (path: string): Promise<string> {
  let handle
  try {
    handle = await open(path, 'r')
    const { size } = await handle.stat()
    if (size > apiKeysFileBytesMax) throw new ApiKeysError('too_large', `${path}: ${size} bytes, over ${apiKeysFileBytesMax}`)
    return await handle.readFile('utf8')
  } catch (error) {
    if (error instanceof ApiKeysError) throw error
    // fs errors name the path and the errno, nothing of the content: safe to keep as the cause.
    throw new ApiKeysError('unreadable', `${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error })
  } finally {
    await handle?.close()
  }
}

/** The digest → grant map of a keys file's text (revoked keys left out), or an ApiKeysError. */
export function parseKeysFile (path: string, text: string): Map<string, ApiKeyGrant> {
  let parsed: KeysFile
  try {
    parsed = JSON.parse(text) as KeysFile
  } catch {
    // No cause on purpose: the SyntaxError's message quotes the file around the error.
    throw new ApiKeysError('invalid_json', `${path}: not valid JSON`)
  }
  if (!Array.isArray(parsed?.keys)) throw new ApiKeysError('invalid_shape', `${path}: expected {"keys": [...]}`)
  const next = new Map<string, ApiKeyGrant>()
  const seen = new Set<string>()
  for (const [index, entry] of parsed.keys.entries()) {
    if (!merchantIdPattern.test(String(entry?.merchant_id)) || !digestPattern.test(String(entry?.key_sha256))) {
      throw new ApiKeysError('invalid_entry', `${path}: keys[${index}] needs merchant_id and a hex key_sha256`)
    }
    // A scope or expiry that cannot be read fails the whole file: reading it as `full` or as
    // "never expires" would widen what the key may do.
    const scope = entry.scope ?? 'full'
    if (!(apiKeyScopes as readonly string[]).includes(scope)) throw new ApiKeysError('invalid_entry', `${path}: keys[${index}] has an unknown scope`)
    const expiresAtMs = entry.expires_at === undefined ? Number.POSITIVE_INFINITY : Date.parse(String(entry.expires_at))
    if (Number.isNaN(expiresAtMs)) throw new ApiKeysError('invalid_entry', `${path}: keys[${index}] has an unreadable expires_at`)
    // Likewise a revocation that cannot be read fails the file: reading it as "not revoked" would
    // bring the key back.
    if (entry.revoked_at !== undefined && (typeof entry.revoked_at !== 'string' || Number.isNaN(Date.parse(entry.revoked_at)))) {
      throw new ApiKeysError('invalid_entry', `${path}: keys[${index}] has an unreadable revoked_at`)
    }
    if (seen.has(entry.key_sha256)) throw new ApiKeysError('duplicate_key', `${path}: keys[${index}] repeats an earlier key_sha256`)
    seen.add(entry.key_sha256)
    // A revoked key stays in the file for the listing, and grants nothing.
    if (entry.revoked_at === undefined) next.set(entry.key_sha256, { merchantId: entry.merchant_id, scope, expiresAtMs })
  }
  return next
}

export class ApiKeyRegistry {
  #grantByDigest = new Map<string, ApiKeyGrant>()
  #grantByHeader = new Map<string, ApiKeyGrant>()
  #unavailable: ApiKeysUnavailableReason | undefined = 'not_loaded'
  /** Reloads run one after the other, so a slow read of an older file never lands last. */
  #reloading: Promise<unknown> = Promise.resolve()
  readonly #path: string

  constructor (path: string) {
    this.#path = path
  }

  get path (): string {
    return this.#path
  }

  get size (): number {
    return this.#grantByDigest.size
  }

  /** Undefined while a valid file is loaded; else why no key is accepted. */
  get unavailableReason (): ApiKeysUnavailableReason | undefined {
    return this.#unavailable
  }

  /**
   * Loads the file and returns the number of keys. On a bad file every key is dropped (fail
   * closed) and the ApiKeysError is thrown.
   */
  reload (): Promise<number> {
    const next = this.#reloading.then(() => this.#load())
    this.#reloading = next.catch(() => {})
    return next
  }

  async #load (): Promise<number> {
    let next: Map<string, ApiKeyGrant>
    try {
      next = parseKeysFile(this.#path, await readKeysFile(this.#path))
    } catch (error) {
      this.#grantByDigest = new Map()
      this.#grantByHeader = new Map()
      this.#unavailable = error instanceof ApiKeysError ? error.reason : 'unreadable'
      throw error
    }
    this.#grantByDigest = next
    this.#grantByHeader = new Map()
    this.#unavailable = undefined
    return next.size
  }

  /**
   * What an `Authorization: Bearer <key>` header grants at `nowMs`, or undefined: an unknown or
   * expired key (always, while the keys are unavailable).
   */
  grantFor (authorization: string | undefined, nowMs: number = Date.now()): ApiKeyGrant | undefined {
    if (authorization === undefined) return undefined
    let grant = this.#grantByHeader.get(authorization)
    if (grant === undefined) {
      grant = this.#resolve(authorization)
      // Only valid keys are remembered, so unknown keys cannot fill the map.
      if (grant !== undefined) {
        if (this.#grantByHeader.size >= resolvedHeadersMax) this.#grantByHeader.clear()
        this.#grantByHeader.set(authorization, grant)
      }
    }
    return grant !== undefined && nowMs < grant.expiresAtMs ? grant : undefined
  }

  /** The merchant of a header's key, whatever its scope, or undefined. */
  merchantFor (authorization: string | undefined, nowMs: number = Date.now()): string | undefined {
    return this.grantFor(authorization, nowMs)?.merchantId
  }

  #resolve (authorization: string): ApiKeyGrant | undefined {
    if (!authorization.startsWith('Bearer ')) return undefined
    const key = authorization.slice('Bearer '.length).trim()
    if (key.length === 0 || key.length > 256) return undefined
    // Looking up the digest, not the key, leaks nothing useful through timing.
    return this.#grantByDigest.get(hash('sha256', key, 'hex'))
  }
}
