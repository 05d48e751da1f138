// Operators' passwords: scrypt (node:crypto) with a per-user random salt, stored as
// `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` so the cost can be raised later without breaking
// stored hashes. Verification is constant-time; an unknown name still costs one scrypt
// (dummyHash), so timing does not tell which names exist.

import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number, options: { N: number, r: number, p: number, maxmem: number }) => Promise<Buffer>

/** OWASP's scrypt floor is N=2^17 with r=8; 2^15 keeps a sign-in ~50 ms on the shared 2-core box. */
export const scryptCost = { N: 2 ** 15, r: 8, p: 1 } as const
const saltBytes = 16
const hashBytes = 32
/** scrypt needs 128·N·r bytes; Node's default ceiling (32 MiB) is exactly that, so give room. */
const scryptMemoryBytesMax = 64 * 1024 * 1024
export const passwordLengthMin = 12
export const passwordLengthMax = 1024

export class PasswordPolicyError extends Error {
  readonly code = 'password_policy'
}

export function checkPasswordPolicy (password: string): void {
  if (password.length < passwordLengthMin || password.length > passwordLengthMax) {
    throw new PasswordPolicyError(`a password is ${passwordLengthMin}..${passwordLengthMax} characters`)
  }
}

export async function hashPassword (password: string): Promise<string> {
  checkPasswordPolicy(password)
  const salt = randomBytes(saltBytes)
  const hash = await scrypt(password, salt, hashBytes, { ...scryptCost, maxmem: scryptMemoryBytesMax })
  return `scrypt$${scryptCost.N}$${scryptCost.r}$${scryptCost.p}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Whether `password` matches `stored`; false for a malformed stored value. */
export async function verifyPassword (password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number]
  const salt = Buffer.from(parts[4]!, 'base64')
  const expected = Buffer.from(parts[5]!, 'base64')
  if (!Number.isSafeInteger(N) || !Number.isSafeInteger(r) || !Number.isSafeInteger(p) || expected.length !== hashBytes) return false
  if (password.length > passwordLengthMax) return false
  const actual = await scrypt(password, salt, hashBytes, { N, r, p, maxmem: scryptMemoryBytesMax })
  return timingSafeEqual(actual, expected)
}

let dummy: Promise<string> | undefined
/** A valid hash of a random password: what an unknown name is checked against. */
export function dummyHash (): Promise<string> {
  dummy ??= hashPassword(randomBytes(24).toString('base64url'))
  return dummy
}
