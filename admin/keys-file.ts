// The one module that changes the merchants' API keys file (the file every payment node, the
// reporting service and the notifier read: payment-svc/api-keys.ts). Both the operators' admin
// API (admin/server.ts) and the CLI (scripts/api-keys.ts) make every change through it, so they
// follow the same rules and never lose each other's change.
//
// Rules:
// - A secret is made here, returned once, and never stored: only its SHA-256 is written. A key is
//   named by its id, `key_` + the first 12 hex digits of that digest.
// - Changes are serialised: within a process by a queue per file, across processes by a lock file
//   (`<file>.lock`, made with O_EXCL; one older than lockStaleMs is taken as abandoned). Under the
//   lock, the file is read, changed and written back, then read once more before the rename: if
//   its bytes changed meanwhile (a writer that ignored the lock), the change is made again on the
//   new bytes (compare and swap), at most casAttemptsMax times.
// - Writes are atomic (a temp file in the same dir, fsynced, renamed over the file, the dir
//   fsynced): a node reads the old file or the new one, never half of one, and a revocation
//   survives a crash.
// - A file this module writes is one the nodes' own parser accepts (parseKeysFile), and one it
//   cannot read it never edits (fail closed: a broken file is for an operator to repair).
// - Revoked keys stay in the file with `revoked_at` (the nodes grant them nothing), so listings
//   show them; nothing is ever removed.
// - Every change appends one audit line (JSON) to `api-keys-audit.log` beside the file, under the
//   same lock and before the file is replaced: time, operator, how (api, cli), action, merchant,
//   key id; never a secret or digest. So no change is without its line (a line whose write then
//   failed is possible: its caller got the error).

import { hash, randomBytes } from 'node:crypto'
import { appendFileSync, chownSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { apiKeysFileBytesMax, apiKeyScopes, parseKeysFile, type ApiKeyScope, type KeysFileEntry } from '../payment-svc/api-keys.ts'

/** Bounds of a change, units last. */
export const keysFileLimits = {
  /** How long a change waits for another process's lock before giving up (keys_file_busy). */
  lockWaitMs: 5_000,
  /** A lock older than this is taken as left by a dead process and removed. A change takes milliseconds. */
  lockStaleMs: 30_000,
  lockPollIntervalMs: 10,
  /** Re-reads when the file changed under the lock (a writer that ignored it). */
  casAttemptsMax: 5,
  /** A roll's grace period: the old key keeps working this long unless told otherwise. */
  graceMsDefault: 24 * 3_600_000,
  graceMsMax: 30 * 24 * 3_600_000,
  /** An expiry given at issue may be at most this far ahead. */
  expiryAheadMsMax: 5 * 366 * 24 * 3_600_000,
  labelLengthMax: 100,
  /** Keys of one merchant that still work (active, or rolled and in their grace). */
  workingKeysPerMerchantMax: 20,
  /** Attempts at a key id no other key has (48 bits: a clash is rare, never silent). */
  keyIdAttemptsMax: 4,
} as const

export const merchantIdPattern = /^[A-Za-z0-9_-]{1,64}$/
export const keyIdPattern = /^key_[0-9a-f]{12}$/
export const auditFileName = 'api-keys-audit.log'

export type KeysFileErrorCode =
  | 'invalid_argument' // a malformed merchant id, key id, scope, label, expiry or grace
  | 'merchant_exists'
  | 'merchant_not_found'
  | 'api_key_not_found'
  | 'api_key_not_active' // roll of a revoked, rolled or expired key
  | 'api_key_limit_reached'
  | 'keys_file_invalid' // the file cannot be read or is not one the nodes accept: not edited
  | 'keys_file_full' // the change would make the file larger than the nodes read
  | 'keys_file_busy' // another change held the lock past lockWaitMs, or the file kept changing

/** An expected refusal, with a stable code. Its message names ids, never a secret. */
export class KeysFileError extends Error {
  readonly code: KeysFileErrorCode
  readonly field: string | undefined
  readonly extra: Record<string, unknown> | undefined
  constructor (code: KeysFileErrorCode, message: string, opts: { field?: string, extra?: Record<string, unknown>, cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'KeysFileError'
    this.code = code
    this.field = opts.field
    this.extra = opts.extra
  }
}

export interface MerchantRecord {
  merchant_id: string
  label?: string
  created_at: string
}

/** The file: `keys` is what the nodes read; `merchants` records merchants made before any key. */
interface KeysDocument {
  merchants?: MerchantRecord[]
  keys: KeysFileEntry[]
  [other: string]: unknown
}

export type KeyState = 'active' | 'rolled' | 'expired' | 'revoked'

/** What an operator sees of a key: never its secret or digest. */
export interface KeyView {
  id: string
  object: 'api_key'
  merchant_id: string
  scope: ApiKeyScope
  label: string | null
  created_at: string | null
  expires_at: string | null
  revoked_at: string | null
  rolled_at: string | null
  rolled_to: string | null
  /** At the time of the answer: revoked, else expired (past expires_at), else rolled (in its grace), else active. */
  state: KeyState
}

export interface MerchantView {
  merchant_id: string
  object: 'merchant'
  label: string | null
  created_at: string | null
}

/** Who makes a change, for the audit line. */
export interface Actor {
  operator: string
  via: 'api' | 'cli'
  /** nginx's request id, for the API. */
  requestId?: string
}

export interface AuditRecord {
  time: string
  operator: string
  via: Actor['via']
  request_id?: string
  action: 'merchant.created' | 'key.issued' | 'key.rolled' | 'key.revoked'
  merchant_id: string
  key_id?: string
  /** key.rolled: the key it replaced. */
  rolled_key_id?: string
  scope?: ApiKeyScope
  expires_at?: string
}

export function keyIdOf (digest: string): string {
  return `key_${digest.slice(0, 12)}`
}

/** A new secret: 32 random bytes, base64url, with a prefix that says what it is. */
export function newSecret (): string {
  return `sk_live_${randomBytes(32).toString('base64url')}`
}

const iso = (ms: number): string => new Date(ms).toISOString()

export function keyStateAt (entry: KeysFileEntry, nowMs: number): KeyState {
  if (entry.revoked_at !== undefined) return 'revoked'
  if (entry.expires_at !== undefined && Date.parse(entry.expires_at) <= nowMs) return 'expired'
  if (entry.rolled_at !== undefined) return 'rolled'
  return 'active'
}

export function keyView (entry: KeysFileEntry, nowMs: number): KeyView {
  return {
    id: keyIdOf(entry.key_sha256),
    object: 'api_key',
    merchant_id: entry.merchant_id,
    scope: entry.scope ?? 'full',
    label: entry.label ?? null,
    created_at: entry.created_at ?? null,
    expires_at: entry.expires_at ?? null,
    revoked_at: entry.revoked_at ?? null,
    rolled_at: entry.rolled_at ?? null,
    rolled_to: entry.rolled_to ?? null,
    state: keyStateAt(entry, nowMs),
  }
}

// ---- reading ---------------------------------------------------------------------------------

function parseDocument (path: string, text: string): KeysDocument {
  try {
    // The nodes' own parser first: a file they would refuse is never edited.
    parseKeysFile(path, text)
  } catch (error) {
    throw new KeysFileError('keys_file_invalid', (error as Error).message, { cause: error })
  }
  const doc = JSON.parse(text) as KeysDocument
  if (doc.merchants !== undefined) {
    const valid = Array.isArray(doc.merchants) && doc.merchants.every((m) => merchantIdPattern.test(String(m?.merchant_id)) && typeof m.created_at === 'string')
    if (!valid) throw new KeysFileError('keys_file_invalid', `${path}: "merchants" must be a list of {merchant_id, created_at}`)
  }
  return doc
}

function readText (path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new KeysFileError('keys_file_invalid', `${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error })
  }
}

// ---- writing ---------------------------------------------------------------------------------

/** Who should own a file written here: the current file's owner, else its dir's (only root can chown). */
function ownerFor (path: string): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const s = statSync(existsSync(path) ? path : dirname(path))
  return { uid: s.uid, gid: s.gid }
}

/**
 * Writes `text` to `path` atomically and durably: a temp file in the same dir (0600, fsynced,
 * owned like the file it replaces, so a change made as root leaves the nodes able to read it),
 * renamed over `path`, then the dir fsynced. Also the stack's and the tests' way to write a whole
 * keys file (scripts/stack/api-keys.ts).
 */
export function writeFileAtomic (path: string, text: string, owner?: { uid: number, gid: number } | null): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
  const newOwner = owner === null ? undefined : (owner ?? ownerFor(path))
  try {
    const fd = openSync(tmp, 'wx', 0o600)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    if (newOwner !== undefined) chownSync(tmp, newOwner.uid, newOwner.gid)
    renameSync(tmp, path)
  } catch (error) {
    rmSync(tmp, { force: true })
    throw error
  }
  const dirFd = openSync(dirname(path), 'r')
  try {
    fsyncSync(dirFd)
  } finally {
    closeSync(dirFd)
  }
}

function render (doc: KeysDocument): string {
  return JSON.stringify(doc, null, 2) + '\n'
}

// ---- locking ---------------------------------------------------------------------------------

export interface KeysFileOptions {
  /** Default: Date.now. Tests fix the time. */
  nowMs?: () => number
  /** Tests shorten the waits. */
  limits?: Partial<Record<'lockWaitMs' | 'lockStaleMs' | 'lockPollIntervalMs', number>>
  /**
   * Called under the lock after the file was read and before it is written (tests change the file
   * there, as a writer ignoring the lock would).
   */
  beforeWrite?: () => void
}

/** Changes queued per file in this process: one at a time, so they never spin on each other's lock. */
const queues = new Map<string, Promise<unknown>>()

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function acquireLock (lock: string, limits: { lockWaitMs: number, lockStaleMs: number, lockPollIntervalMs: number }): Promise<void> {
  const deadline = Date.now() + limits.lockWaitMs
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600)
      try {
        writeFileSync(fd, `${process.pid} ${new Date().toISOString()}\n`)
      } finally {
        closeSync(fd)
      }
      return
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    try {
      if (Date.now() - statSync(lock).mtimeMs > limits.lockStaleMs) rmSync(lock, { force: true })
    } catch { /* released meanwhile */ }
    if (Date.now() > deadline) {
      throw new KeysFileError('keys_file_busy', `${lock} has been held by another change for over ${limits.lockWaitMs} ms; retry (a lock left by a dead process is removed after ${limits.lockStaleMs} ms)`)
    }
    await sleep(limits.lockPollIntervalMs)
  }
}

// ---- the file --------------------------------------------------------------------------------

interface Change<T> {
  /** The new document, or undefined: nothing to write (e.g. a key revoked again). */
  doc: KeysDocument | undefined
  result: T
  audit: Array<Omit<AuditRecord, 'time' | 'operator' | 'via' | 'request_id'>>
}

export class KeysFile {
  readonly path: string
  readonly auditPath: string
  readonly #now: () => number
  readonly #limits: { lockWaitMs: number, lockStaleMs: number, lockPollIntervalMs: number }
  readonly #beforeWrite: (() => void) | undefined

  constructor (path: string, opts: KeysFileOptions = {}) {
    this.path = path
    this.auditPath = join(dirname(path), auditFileName)
    this.#now = opts.nowMs ?? Date.now
    this.#limits = { ...keysFileLimits, ...opts.limits }
    this.#beforeWrite = opts.beforeWrite
  }

  /** The file as it is now (no lock: every write is a rename, so a read sees a whole file). */
  #read (): KeysDocument {
    return parseDocument(this.path, readText(this.path))
  }

  merchantExists (merchantId: string): boolean {
    return this.#exists(this.#read(), merchantId)
  }

  #exists (doc: KeysDocument, merchantId: string): boolean {
    return (doc.merchants ?? []).some((m) => m.merchant_id === merchantId) || doc.keys.some((k) => k.merchant_id === merchantId)
  }

  /** A merchant's keys, oldest first; merchant_not_found for a merchant with neither a record nor a key. */
  listKeys (merchantId: string): KeyView[] {
    checkMerchantId(merchantId)
    const doc = this.#read()
    if (!this.#exists(doc, merchantId)) throw new KeysFileError('merchant_not_found', `${merchantId}: no such merchant`)
    const nowMs = this.#now()
    return doc.keys.filter((k) => k.merchant_id === merchantId).map((k) => keyView(k, nowMs))
  }

  /** Every key, or one merchant's (none for an unknown merchant); for the CLI's list. */
  allKeys (merchantId?: string): KeyView[] {
    const nowMs = this.#now()
    return this.#read().keys.filter((k) => merchantId === undefined || k.merchant_id === merchantId).map((k) => keyView(k, nowMs))
  }

  getKey (keyId: string): KeyView {
    checkKeyId(keyId)
    return keyView(entryFor(this.#read(), keyId), this.#now())
  }

  /** Records a merchant with no key yet (merchant_exists if it has a record or a key). */
  createMerchant (actor: Actor, merchantId: string, label?: string): Promise<MerchantView> {
    checkMerchantId(merchantId)
    checkLabel(label)
    return this.#change(actor, (doc, nowMs) => {
      if (this.#exists(doc, merchantId)) throw new KeysFileError('merchant_exists', `${merchantId} exists`)
      const record: MerchantRecord = { merchant_id: merchantId, created_at: iso(nowMs), ...(label === undefined ? {} : { label }) }
      return {
        doc: { ...doc, merchants: [...(doc.merchants ?? []), record] },
        result: merchantView(record),
        audit: [{ action: 'merchant.created', merchant_id: merchantId }],
      }
    })
  }

  /**
   * Issues a key to an existing merchant (`createMerchant: true`: creates the merchant in the same
   * change, merchant_exists if it exists; the CLI's create-merchant). The secret is returned here
   * and nowhere else.
   */
  issueKey (actor: Actor, opts: { merchantId: string, scope?: ApiKeyScope, label?: string, expiresAt?: string, createMerchant?: boolean }): Promise<{ key: KeyView, secret: string }> {
    checkMerchantId(opts.merchantId)
    checkLabel(opts.label)
    const scope = opts.scope ?? 'full'
    if (!(apiKeyScopes as readonly string[]).includes(scope)) throw new KeysFileError('invalid_argument', `scope is one of ${apiKeyScopes.join(', ')}`, { field: 'scope' })
    return this.#change(actor, (doc, nowMs) => {
      const expiresAt = opts.expiresAt === undefined ? undefined : checkExpiry(opts.expiresAt, nowMs)
      const exists = this.#exists(doc, opts.merchantId)
      if (opts.createMerchant === true && exists) throw new KeysFileError('merchant_exists', `${opts.merchantId} exists`)
      if (opts.createMerchant !== true && !exists) throw new KeysFileError('merchant_not_found', `${opts.merchantId}: no such merchant`)
      checkWorkingKeys(doc, opts.merchantId, nowMs)
      const { entry, secret } = newEntry(doc, { merchantId: opts.merchantId, scope, label: opts.label, expiresAt, nowMs })
      const merchants = opts.createMerchant === true
        ? [...(doc.merchants ?? []), { merchant_id: opts.merchantId, created_at: iso(nowMs), ...(opts.label === undefined ? {} : { label: opts.label }) }]
        : doc.merchants
      const keyId = keyIdOf(entry.key_sha256)
      return {
        doc: { ...doc, ...(merchants === undefined ? {} : { merchants }), keys: [...doc.keys, entry] },
        result: { key: keyView(entry, nowMs), secret },
        audit: [
          ...(opts.createMerchant === true ? [{ action: 'merchant.created' as const, merchant_id: opts.merchantId }] : []),
          { action: 'key.issued', merchant_id: opts.merchantId, key_id: keyId, scope, ...(expiresAt === undefined ? {} : { expires_at: expiresAt }) },
        ],
      }
    })
  }

  /**
   * Replaces a working key with a new secret: a new key of the same merchant, scope, label and
   * expiry; the old one keeps working until `graceMs` from now (never past an expiry it already
   * had), then is refused. Only an active key can be rolled (api_key_not_active otherwise: roll
   * its successor instead), so a retried roll never leaves a second new key nobody holds.
   */
  rollKey (actor: Actor, keyId: string, graceMs: number = keysFileLimits.graceMsDefault): Promise<{ key: KeyView, secret: string, rolled: KeyView }> {
    checkKeyId(keyId)
    if (!Number.isSafeInteger(graceMs) || graceMs < 0 || graceMs > keysFileLimits.graceMsMax) {
      throw new KeysFileError('invalid_argument', `the grace period is 0..${keysFileLimits.graceMsMax} ms`, { field: 'grace_period_seconds' })
    }
    return this.#change(actor, (doc, nowMs) => {
      const old = entryFor(doc, keyId)
      const state = keyStateAt(old, nowMs)
      if (state !== 'active') throw new KeysFileError('api_key_not_active', `${keyId} is ${state}: only an active key can be rolled`, { extra: { state } })
      const { entry, secret } = newEntry(doc, { merchantId: old.merchant_id, scope: old.scope ?? 'full', label: old.label, expiresAt: old.expires_at, nowMs })
      const newId = keyIdOf(entry.key_sha256)
      const oldExpiresMs = old.expires_at === undefined ? Number.POSITIVE_INFINITY : Date.parse(old.expires_at)
      const rolled: KeysFileEntry = { ...old, expires_at: iso(Math.min(oldExpiresMs, nowMs + graceMs)), rolled_at: iso(nowMs), rolled_to: newId }
      return {
        doc: { ...doc, keys: [...doc.keys.map((e) => (e === old ? rolled : e)), entry] },
        result: { key: keyView(entry, nowMs), secret, rolled: keyView(rolled, nowMs) },
        audit: [{ action: 'key.rolled', merchant_id: old.merchant_id, key_id: newId, rolled_key_id: keyId, expires_at: rolled.expires_at }],
      }
    })
  }

  /** Revokes a key at once (a rolled key's grace ends). A key revoked before: `changed` false, nothing written. */
  revokeKey (actor: Actor, keyId: string): Promise<{ key: KeyView, changed: boolean }> {
    checkKeyId(keyId)
    return this.#change<{ key: KeyView, changed: boolean }>(actor, (doc, nowMs) => {
      const old = entryFor(doc, keyId)
      if (old.revoked_at !== undefined) return { doc: undefined, result: { key: keyView(old, nowMs), changed: false }, audit: [] }
      const revoked: KeysFileEntry = { ...old, revoked_at: iso(nowMs) }
      return {
        doc: { ...doc, keys: doc.keys.map((e) => (e === old ? revoked : e)) },
        result: { key: keyView(revoked, nowMs), changed: true },
        audit: [{ action: 'key.revoked', merchant_id: old.merchant_id, key_id: keyId }],
      }
    })
  }

  /** One change, queued behind this process's others for the file, under the cross-process lock. */
  #change<T> (actor: Actor, apply: (doc: KeysDocument, nowMs: number) => Change<T>): Promise<T> {
    const previous = queues.get(this.path) ?? Promise.resolve()
    const run = previous.then(() => this.#locked(actor, apply))
    const tail = run.catch(() => {})
    queues.set(this.path, tail)
    void tail.then(() => { if (queues.get(this.path) === tail) queues.delete(this.path) })
    return run
  }

  async #locked<T> (actor: Actor, apply: (doc: KeysDocument, nowMs: number) => Change<T>): Promise<T> {
    const lock = `${this.path}.lock`
    await acquireLock(lock, this.#limits)
    try {
      for (let attempt = 1; ; attempt++) {
        const before = readText(this.path)
        const nowMs = this.#now()
        const change = apply(parseDocument(this.path, before), nowMs)
        if (change.doc === undefined) return change.result
        const text = render(change.doc)
        if (Buffer.byteLength(text) > apiKeysFileBytesMax) throw new KeysFileError('keys_file_full', `the keys file would pass ${apiKeysFileBytesMax} bytes, past what the nodes read`)
        // Never write a file the nodes would refuse: they would then refuse every key.
        parseKeysFile(this.path, text)
        this.#beforeWrite?.()
        // Compare and swap: the lock keeps out every writer that takes it; a writer that does not
        // (a hand edit, an old tool) must not be overwritten with a change made on its old bytes.
        if (readText(this.path) !== before) {
          if (attempt >= keysFileLimits.casAttemptsMax) throw new KeysFileError('keys_file_busy', `${this.path} kept changing under the lock (${attempt} attempts); retry`)
          continue
        }
        // The audit line first: a line for a change whose write then failed (the caller saw the
        // error) is better than a change with no line.
        this.#audit(actor, nowMs, change.audit)
        writeFileAtomic(this.path, text)
        return change.result
      }
    } finally {
      rmSync(lock, { force: true })
    }
  }

  #audit (actor: Actor, nowMs: number, records: Change<unknown>['audit']): void {
    if (records.length === 0) return
    const lines = records.map((r) => JSON.stringify({
      time: iso(nowMs), operator: actor.operator, via: actor.via, ...(actor.requestId === undefined ? {} : { request_id: actor.requestId }), ...r,
    } satisfies AuditRecord) + '\n').join('')
    const owner = existsSync(this.auditPath) ? undefined : ownerFor(this.auditPath)
    appendFileSync(this.auditPath, lines, { mode: 0o600 })
    if (owner !== undefined) chownSync(this.auditPath, owner.uid, owner.gid)
  }
}

/** The audit lines written so far (tests, and operators with jq). */
export function readAuditLog (keysFilePath: string): AuditRecord[] {
  const path = join(dirname(keysFilePath), auditFileName)
  if (!existsSync(path)) return []
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditRecord)
}

function merchantView (record: MerchantRecord): MerchantView {
  return { merchant_id: record.merchant_id, object: 'merchant', label: record.label ?? null, created_at: record.created_at }
}

function checkMerchantId (merchantId: string): void {
  if (!merchantIdPattern.test(merchantId)) throw new KeysFileError('invalid_argument', 'a merchant id is 1..64 of [A-Za-z0-9_-]', { field: 'merchant_id' })
}

function checkKeyId (keyId: string): void {
  if (!keyIdPattern.test(keyId)) throw new KeysFileError('invalid_argument', 'a key id is key_ and 12 hex digits (a key is named by its id, never its secret)', { field: 'key_id' })
}

function checkLabel (label: string | undefined): void {
  if (label !== undefined && (typeof label !== 'string' || label.length === 0 || label.length > keysFileLimits.labelLengthMax)) {
    throw new KeysFileError('invalid_argument', `a label is 1..${keysFileLimits.labelLengthMax} characters`, { field: 'label' })
  }
}

/** An RFC 3339 time with a zone, ahead of now and at most expiryAheadMsMax ahead; as the file stores it. */
function checkExpiry (text: string, nowMs: number): string {
  const ms = typeof text === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ? Date.parse(text) : Number.NaN
  if (Number.isNaN(ms)) throw new KeysFileError('invalid_argument', 'expires_at is an RFC 3339 time with a zone, e.g. 2027-01-31T00:00:00Z', { field: 'expires_at' })
  if (ms <= nowMs || ms - nowMs > keysFileLimits.expiryAheadMsMax) {
    throw new KeysFileError('invalid_argument', `expires_at must be ahead of now, by at most ${keysFileLimits.expiryAheadMsMax / 86_400_000} days`, { field: 'expires_at' })
  }
  return iso(ms)
}

function checkWorkingKeys (doc: KeysDocument, merchantId: string, nowMs: number): void {
  const working = doc.keys.filter((k) => k.merchant_id === merchantId && ['active', 'rolled'].includes(keyStateAt(k, nowMs))).length
  if (working >= keysFileLimits.workingKeysPerMerchantMax) {
    throw new KeysFileError('api_key_limit_reached', `${merchantId} holds ${working} working keys, the most allowed; revoke one first`)
  }
}

function entryFor (doc: KeysDocument, keyId: string): KeysFileEntry {
  const found = doc.keys.filter((e) => keyIdOf(e.key_sha256) === keyId)
  if (found.length === 0) throw new KeysFileError('api_key_not_found', `${keyId}: no such key`)
  // Never made here (newEntry refuses a clashing id), but a hand-edited file could hold one.
  if (found.length > 1) throw new KeysFileError('keys_file_invalid', `${keyId} names ${found.length} keys; edit the file`)
  return found[0]!
}

function newEntry (doc: KeysDocument, o: { merchantId: string, scope: ApiKeyScope, label: string | undefined, expiresAt: string | undefined, nowMs: number }): { entry: KeysFileEntry, secret: string } {
  const taken = new Set(doc.keys.map((k) => keyIdOf(k.key_sha256)))
  for (let attempt = 0; attempt < keysFileLimits.keyIdAttemptsMax; attempt++) {
    const secret = newSecret()
    const digest = hash('sha256', secret, 'hex')
    if (taken.has(keyIdOf(digest))) continue
    const entry: KeysFileEntry = { merchant_id: o.merchantId, key_sha256: digest, created_at: iso(o.nowMs) }
    if (o.label !== undefined) entry.label = o.label
    if (o.scope !== 'full') entry.scope = o.scope
    if (o.expiresAt !== undefined) entry.expires_at = o.expiresAt
    return { entry, secret }
  }
  // 48-bit ids: several clashes in a row mean the random source is broken.
  throw new Error(`${keysFileLimits.keyIdAttemptsMax} new keys in a row had an id already taken`)
}
