// Field encryption at rest (issue #17, part 7): AES-256-GCM with a key ring.
//
// A sealed value is self-describing, so keys rotate without rewriting stored data:
//
//   byte 0        format version (1)
//   byte 1        key id length L (1..keyIdLengthMax)
//   bytes 2..2+L  key id (ASCII)
//   12 bytes      IV (random per value: a 96-bit random IV keeps the GCM nonce-reuse chance
//                 negligible for far more values than one key will ever seal; rotate yearly anyway)
//   n bytes       ciphertext
//   16 bytes      GCM tag
//
// The tag authenticates the header (version and key id) and a caller-given context (e.g.
// `payment/<merchant>/<checkout id>`), so a value copied to another payment, another field or
// another key id does not open. One key (the ring's `active` one) seals; every listed key
// opens. A value that does not open is a FieldCryptoError with a stable code, never returned
// as it is.
//
// Keys live in a JSON file outside every data dir (RINGPAY_FIELD_KEYS_FILE), 0600:
//   {"active": "k2", "keys": [{"id": "k1", "key": "<base64 of 32 bytes>"}, {"id": "k2", "key": "…"}]}
// KeyObjects are made once at load: sealing and opening derive nothing per call.

import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomFillSync, type KeyObject } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute, relative, resolve } from 'node:path'

export const sealedFormatVersion = 1
export const keyBytes = 32
export const ivBytes = 12
export const tagBytes = 16
export const keyIdLengthMax = 32
/**
 * IVs are cut from a pool of CSPRNG bytes refilled when used up: one randomBytes(12) call cost
 * 1.6 µs, a third of a seal; each IV is still fresh random bytes, never reused.
 */
export const ivPoolBytes = 4096
/** A keys file is a few keys; anything this large is not one. */
export const keysFileBytesMax = 64 * 1024
/** Text form of a sealed value where only text fits (Postgres columns, JSON): this prefix + base64url. */
export const sealedTextPrefix = 'enc:'

const keyIdPattern = /^[A-Za-z0-9_.-]{1,32}$/

export type FieldCryptoErrorCode =
  | 'field_keys_missing'
  | 'field_keys_inside_data_dir'
  | 'field_keys_unreadable'
  | 'field_keys_insecure_mode'
  | 'field_keys_invalid'
  | 'field_key_unknown'
  | 'sealed_value_malformed'
  | 'sealed_value_unsupported_version'
  | 'sealed_value_auth_failed'

export class FieldCryptoError extends Error {
  readonly code: FieldCryptoErrorCode
  constructor (code: FieldCryptoErrorCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'FieldCryptoError'
    this.code = code
  }
}

export interface FieldKeySpec {
  id: string
  /** base64 of `keyBytes` random bytes */
  key: string
}

export interface FieldKeysFile {
  active: string
  keys: FieldKeySpec[]
}

/** What seals and opens fields: the codec, the store and the processor take this. */
export interface FieldSealer {
  seal (plaintext: Uint8Array, context: string): Uint8Array
  open (sealed: Uint8Array, context: string): Buffer
  sealText (text: string, context: string): string
  openText (sealedText: string, context: string): string
}

interface RingKey {
  id: string
  key: KeyObject
  /** version byte, id length, id: written in front of every value this key seals (and in its AAD) */
  header: Buffer
}

export class KeyRing implements FieldSealer {
  readonly activeKeyId: string
  readonly #active: RingKey
  readonly #byId: Map<string, RingKey>

  constructor (file: FieldKeysFile) {
    if (file === null || typeof file !== 'object' || !Array.isArray(file.keys) || file.keys.length === 0) {
      throw new FieldCryptoError('field_keys_invalid', 'expected {"active": id, "keys": [{"id", "key"}, …]} with at least one key')
    }
    this.#byId = new Map()
    for (const spec of file.keys) {
      if (spec === null || typeof spec !== 'object' || typeof spec.id !== 'string' || !keyIdPattern.test(spec.id)) {
        throw new FieldCryptoError('field_keys_invalid', `a key id must be 1..${keyIdLengthMax} of [A-Za-z0-9_.-]`)
      }
      if (this.#byId.has(spec.id)) throw new FieldCryptoError('field_keys_invalid', `key id ${spec.id} listed twice`)
      const raw = typeof spec.key === 'string' && /^[A-Za-z0-9+/_-]+={0,2}$/.test(spec.key) ? Buffer.from(spec.key, 'base64') : undefined
      // Never quote the key in an error.
      if (raw === undefined || raw.length !== keyBytes) {
        throw new FieldCryptoError('field_keys_invalid', `key ${spec.id} is not base64 of ${keyBytes} bytes`)
      }
      const header = Buffer.alloc(2 + spec.id.length)
      header[0] = sealedFormatVersion
      header[1] = spec.id.length
      header.write(spec.id, 2, 'latin1')
      this.#byId.set(spec.id, { id: spec.id, key: createSecretKey(raw), header })
      raw.fill(0)
    }
    const active = typeof file.active === 'string' ? this.#byId.get(file.active) : undefined
    if (active === undefined) throw new FieldCryptoError('field_keys_invalid', 'the active key id is not among the keys')
    this.#active = active
    this.activeKeyId = active.id
  }

  /**
   * Reads a keys file. It must be a regular file with no group or other permission bits (like
   * ssh's private keys): a key readable by other users is refused rather than used.
   */
  static fromFile (path: string): KeyRing {
    let text: string
    try {
      const stat = statSync(path)
      if (!stat.isFile()) throw new FieldCryptoError('field_keys_unreadable', `${path} is not a regular file`)
      if ((stat.mode & 0o077) !== 0) {
        throw new FieldCryptoError('field_keys_insecure_mode', `${path} has mode ${(stat.mode & 0o777).toString(8)}; it must be 0600 or stricter`)
      }
      if (stat.size > keysFileBytesMax) throw new FieldCryptoError('field_keys_invalid', `${path} is over ${keysFileBytesMax} bytes`)
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if (error instanceof FieldCryptoError) throw error
      throw new FieldCryptoError('field_keys_unreadable', `${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      // V8's message quotes the text, which holds keys: say only that it is not JSON.
      throw new FieldCryptoError('field_keys_invalid', `${path} is not JSON`)
    }
    return new KeyRing(parsed as FieldKeysFile)
  }

  has (keyId: string): boolean {
    return this.#byId.has(keyId)
  }

  seal (plaintext: Uint8Array, context: string): Uint8Array {
    const { key, header } = this.#active
    const out = Buffer.allocUnsafe(header.length + ivBytes + plaintext.length + tagBytes)
    header.copy(out, 0)
    const ivAt = header.length
    nextIv(out, ivAt)
    const cipher = createCipheriv('aes-256-gcm', key, out.subarray(ivAt, ivAt + ivBytes))
    cipher.setAAD(aad(header, context))
    const body = cipher.update(plaintext)
    body.copy(out, ivAt + ivBytes)
    // GCM is a stream mode: final() returns nothing, the ciphertext is as long as the plaintext.
    cipher.final()
    cipher.getAuthTag().copy(out, ivAt + ivBytes + body.length)
    return out
  }

  open (sealed: Uint8Array, context: string): Buffer {
    if (sealed.length < 2) throw new FieldCryptoError('sealed_value_malformed', 'too short')
    if (sealed[0] !== sealedFormatVersion) throw new FieldCryptoError('sealed_value_unsupported_version', `format version ${sealed[0]}`)
    const idLength = sealed[1]!
    const headerLength = 2 + idLength
    if (idLength === 0 || idLength > keyIdLengthMax || sealed.length < headerLength + ivBytes + tagBytes) {
      throw new FieldCryptoError('sealed_value_malformed', 'bad header or length')
    }
    const keyId = Buffer.from(sealed.buffer, sealed.byteOffset + 2, idLength).toString('latin1')
    const ringKey = this.#byId.get(keyId)
    if (ringKey === undefined) throw new FieldCryptoError('field_key_unknown', `key id ${JSON.stringify(keyId)} is not in the key ring`)
    const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length)
    const tagAt = bytes.length - tagBytes
    const decipher = createDecipheriv('aes-256-gcm', ringKey.key, bytes.subarray(headerLength, headerLength + ivBytes))
    decipher.setAAD(aad(ringKey.header, context))
    decipher.setAuthTag(bytes.subarray(tagAt))
    const plain = decipher.update(bytes.subarray(headerLength + ivBytes, tagAt))
    try {
      decipher.final()
    } catch {
      plain.fill(0)
      throw new FieldCryptoError('sealed_value_auth_failed', `does not open under key ${keyId} for this context (tampered, or copied from elsewhere)`)
    }
    return plain
  }

  /** A sealed UTF-8 string as text (`enc:<base64url>`), for columns and JSON that hold text. */
  sealText (text: string, context: string): string {
    return sealedTextPrefix + Buffer.from(this.seal(Buffer.from(text, 'utf8'), context)).toString('base64url')
  }

  openText (sealedText: string, context: string): string {
    if (!sealedText.startsWith(sealedTextPrefix)) throw new FieldCryptoError('sealed_value_malformed', `text does not start with ${sealedTextPrefix}`)
    return this.open(Buffer.from(sealedText.slice(sealedTextPrefix.length), 'base64url'), context).toString('utf8')
  }
}

export const fieldKeysFileEnv = 'RINGPAY_FIELD_KEYS_FILE'

/**
 * The key ring of `RINGPAY_FIELD_KEYS_FILE`. A keys file inside one of `dataDirs` is refused: a
 * copy or backup of a data dir must not carry the key that opens it.
 */
export function keyRingFromEnv (env: NodeJS.ProcessEnv, dataDirs: readonly string[] = []): KeyRing {
  const path = env[fieldKeysFileEnv]
  if (path === undefined || path === '') throw new FieldCryptoError('field_keys_missing', `${fieldKeysFileEnv} is required`)
  for (const dir of dataDirs) {
    const inside = relative(resolve(dir), resolve(path))
    if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
      throw new FieldCryptoError('field_keys_inside_data_dir', `${fieldKeysFileEnv} (${path}) is inside the data dir ${dir}`)
    }
  }
  return KeyRing.fromFile(path)
}

const ivPool = Buffer.alloc(ivPoolBytes)
let ivPoolAt = ivPoolBytes

function nextIv (out: Buffer, at: number): void {
  if (ivPoolAt + ivBytes > ivPoolBytes) {
    randomFillSync(ivPool)
    ivPoolAt = 0
  }
  ivPool.copy(out, at, ivPoolAt, ivPoolAt + ivBytes)
  // Wiped once used: an IV is never handed out twice.
  ivPool.fill(0, ivPoolAt, ivPoolAt + ivBytes)
  ivPoolAt += ivBytes
}

function aad (header: Buffer, context: string): Buffer {
  const contextLength = Buffer.byteLength(context, 'utf8')
  const out = Buffer.allocUnsafe(header.length + contextLength)
  header.copy(out, 0)
  out.write(context, header.length, 'utf8')
  return out
}

/** The key id a sealed value names (for metrics and rotation checks); undefined if malformed. */
export function sealedKeyId (sealed: Uint8Array): string | undefined {
  if (sealed.length < 2 || sealed[0] !== sealedFormatVersion || sealed[1] === 0 || sealed.length < 2 + sealed[1]!) return undefined
  return Buffer.from(sealed.buffer, sealed.byteOffset + 2, sealed[1]!).toString('latin1')
}

/** A new random key spec (32 bytes from the CSPRNG). */
export function newFieldKey (id: string): FieldKeySpec {
  if (!keyIdPattern.test(id)) throw new FieldCryptoError('field_keys_invalid', `a key id must be 1..${keyIdLengthMax} of [A-Za-z0-9_.-]`)
  return { id, key: randomBytes(keyBytes).toString('base64') }
}

/** A keys file with `spec` added and made active; the old keys stay, so old values still open. */
export function withNewActiveKey (file: FieldKeysFile, spec: FieldKeySpec): FieldKeysFile {
  if (file.keys.some((key) => key.id === spec.id)) throw new FieldCryptoError('field_keys_invalid', `key id ${spec.id} already in the ring`)
  const next = { active: spec.id, keys: [...file.keys, spec] }
  void new KeyRing(next) // validates
  return next
}

/**
 * A key ring that reads its file again when it meets a value sealed under a key it lacks (a
 * rotation made after it started), at most once per `reloadIntervalMsMin`, and then opens the
 * value. For long-running readers that cannot be restarted with every rotation without losing
 * work (the notifier: an event it cannot open would make no merchant event). Seals with whatever
 * key the file last made active. A file that cannot be read keeps the ring it had.
 */
export class ReloadingKeyRing implements FieldSealer {
  readonly #load: () => KeyRing
  readonly #reloadIntervalMsMin: number
  #ring: KeyRing
  #lastReloadMs = Number.NEGATIVE_INFINITY

  constructor (load: () => KeyRing, reloadIntervalMsMin: number) {
    this.#load = load
    this.#reloadIntervalMsMin = reloadIntervalMsMin
    this.#ring = load()
  }

  get activeKeyId (): string { return this.#ring.activeKeyId }

  seal (plaintext: Uint8Array, context: string): Uint8Array { return this.#ring.seal(plaintext, context) }
  sealText (text: string, context: string): string { return this.#ring.sealText(text, context) }
  open (sealed: Uint8Array, context: string): Buffer { return this.#withReload(() => this.#ring.open(sealed, context)) }
  openText (sealedText: string, context: string): string { return this.#withReload(() => this.#ring.openText(sealedText, context)) }

  #withReload<T> (open: () => T): T {
    try {
      return open()
    } catch (error) {
      if (!(error instanceof FieldCryptoError) || error.code !== 'field_key_unknown' || !this.#reload()) throw error
      return open()
    }
  }

  #reload (): boolean {
    const nowMs = performance.now()
    if (nowMs - this.#lastReloadMs < this.#reloadIntervalMsMin) return false
    this.#lastReloadMs = nowMs
    try {
      this.#ring = this.#load()
      return true
    } catch {
      return false
    }
  }
}
