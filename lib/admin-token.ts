// Bearer tokens of the dev/ops surfaces that are not the public API: the stack runner's control
// API and the reconciler's admin trigger. A token is compared in constant time through its
// SHA-256 digest (equal lengths whatever was sent, so neither the length nor a matching prefix of
// the token shows in the timing).

import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

/** Shorter tokens are refused at start-up: 16 characters of base64url are 96 bits. */
export const adminTokenLengthMin = 16
/** A token sent longer than this is not even hashed. */
export const adminTokenLengthMax = 512

/** A fresh token: 32 random bytes, base64url (43 characters). */
export function newAdminToken (): string {
  return randomBytes(32).toString('base64url')
}

export function digestAdminToken (token: string): Buffer {
  return hash('sha256', token, 'buffer')
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken (authorization: string | string[] | undefined): string | undefined {
  if (typeof authorization !== 'string' || !authorization.startsWith('Bearer ')) return undefined
  const token = authorization.slice('Bearer '.length).trim()
  return token.length === 0 || token.length > adminTokenLengthMax ? undefined : token
}

/** Whether the request's Authorization header carries the token whose digest is given. */
export function authorizedBy (authorization: string | string[] | undefined, expectedDigest: Buffer): boolean {
  const token = bearerToken(authorization)
  return token !== undefined && timingSafeEqual(digestAdminToken(token), expectedDigest)
}
