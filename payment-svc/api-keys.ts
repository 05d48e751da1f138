// Merchant API keys. Only SHA-256 digests are stored; the file is re-read on SIGHUP or an admin
// call, so keys rotate without a restart. A request's merchant comes from its key, never its body.

import { hash } from 'node:crypto'
import { readFile } from 'node:fs/promises'

interface KeysFile {
  keys: Array<{ merchant_id: string, key_sha256: string, label?: string }>
}

const merchantIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const digestPattern = /^[0-9a-f]{64}$/

/** Authorization headers remembered after one hash; bounded, emptied on reload. */
const resolvedHeadersMax = 1024

export class ApiKeyRegistry {
  #merchantByDigest = new Map<string, string>()
  #merchantByHeader = new Map<string, string>()
  readonly #path: string

  constructor (path: string) {
    this.#path = path
  }

  get size (): number {
    return this.#merchantByDigest.size
  }

  /** Loads the file; on a bad file the previous keys stay in force and the error is thrown. */
  async reload (): Promise<number> {
    const text = await readFile(this.#path, 'utf8')
    const parsed = JSON.parse(text) as KeysFile
    if (!Array.isArray(parsed?.keys)) throw new Error(`${this.#path}: expected {"keys": [...]}`)
    const next = new Map<string, string>()
    for (const [index, entry] of parsed.keys.entries()) {
      if (!merchantIdPattern.test(String(entry.merchant_id)) || !digestPattern.test(String(entry.key_sha256))) {
        throw new Error(`${this.#path}: keys[${index}] needs merchant_id and a hex key_sha256`)
      }
      next.set(entry.key_sha256, entry.merchant_id)
    }
    this.#merchantByDigest = next
    this.#merchantByHeader = new Map()
    return next.size
  }

  /** The merchant for an `Authorization: Bearer <key>` header, or undefined. */
  merchantFor (authorization: string | undefined): string | undefined {
    if (authorization === undefined) return undefined
    const known = this.#merchantByHeader.get(authorization)
    if (known !== undefined) return known
    const merchantId = this.#resolve(authorization)
    // Only valid keys are remembered, so unknown keys cannot fill the map.
    if (merchantId !== undefined) {
      if (this.#merchantByHeader.size >= resolvedHeadersMax) this.#merchantByHeader.clear()
      this.#merchantByHeader.set(authorization, merchantId)
    }
    return merchantId
  }

  #resolve (authorization: string): string | undefined {
    if (!authorization.startsWith('Bearer ')) return undefined
    const key = authorization.slice('Bearer '.length).trim()
    if (key.length === 0 || key.length > 256) return undefined
    // Looking up the digest, not the key, leaks nothing useful through timing.
    return this.#merchantByDigest.get(hash('sha256', key, 'hex'))
  }
}
