// Who is calling the admin API: an operator, by the bearer token the stack made for it
// (`<dir>/secrets/operator-token`). The service holds only each token's SHA-256 digest, with the
// operator's name (RINGPAY_ADMIN_OPERATORS=`<name>:<sha256 hex>,…`), and compares a presented
// token's digest with every one of them in constant time (timingSafeEqual on equal-length
// digests, no early exit), so neither a token's length nor a matching prefix shows in the timing.
// A merchant API key is not an operator token: its digest is in no operator's entry.

import { hash, timingSafeEqual } from 'node:crypto'
import { adminTokenLengthMax, bearerToken } from '../lib/admin-token.ts'
import { adminLimits } from './limits.ts'

export interface Operator { name: string, digest: Buffer }

export class OperatorsSettingError extends Error {
  readonly code = 'admin_operators_invalid'
}

/** 32 bytes of base64url (43 characters); the stack makes them with this prefix so a leaked one is recognised. */
export const operatorTokenPrefix = 'rpop_'
export const operatorTokenLengthMin = 32

const namePattern = /^[a-z][a-z0-9_-]{0,31}$/
const digestPattern = /^[0-9a-f]{64}$/

export function operatorTokenDigest (token: string): string {
  return hash('sha256', token, 'hex')
}

/** The service's setting for some operators' tokens: `name:<sha256 hex>,…`. */
export function formatOperators (operators: ReadonlyArray<{ name: string, token: string }>): string {
  return operators.map(({ name, token }) => {
    if (!namePattern.test(name)) throw new OperatorsSettingError(`operator name ${JSON.stringify(name)}: 1..32 of [a-z0-9_-]`)
    if (token.length < operatorTokenLengthMin || token.length > adminTokenLengthMax) throw new OperatorsSettingError(`the ${name} token must be ${operatorTokenLengthMin}..${adminTokenLengthMax} characters`)
    return `${name}:${operatorTokenDigest(token)}`
  }).join(',')
}

/** Parses RINGPAY_ADMIN_OPERATORS; refuses an empty list, a bad name or digest, a digest listed twice. */
export function parseOperators (text: string): Operator[] {
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e !== '')
  if (entries.length === 0) throw new OperatorsSettingError('no operator is listed: the admin API would refuse everyone')
  if (entries.length > adminLimits.operatorsMax) throw new OperatorsSettingError(`at most ${adminLimits.operatorsMax} operators`)
  const seen = new Set<string>()
  return entries.map((entry, index) => {
    const colon = entry.indexOf(':')
    const name = entry.slice(0, colon)
    const digest = entry.slice(colon + 1).toLowerCase()
    // By position only: an entry should never hold a token, but if one was pasted, it is not logged.
    if (colon < 1 || !namePattern.test(name)) throw new OperatorsSettingError(`entry ${index + 1}: the name must be 1..32 of [a-z0-9_-]`)
    if (!digestPattern.test(digest)) throw new OperatorsSettingError(`entry ${index + 1}: not a hex SHA-256 digest`)
    if (seen.has(digest)) throw new OperatorsSettingError(`entry ${index + 1}: a digest listed twice`)
    seen.add(digest)
    return { name, digest: Buffer.from(digest, 'hex') }
  })
}

/** The operator whose token the Authorization header carries, or undefined. */
export function operatorFor (operators: readonly Operator[], authorization: string | string[] | undefined): string | undefined {
  const token = bearerToken(authorization)
  if (token === undefined) return undefined
  const presented = hash('sha256', token, 'buffer')
  let found: string | undefined
  // Every entry is compared, a match or not: the time does not say which one matched.
  for (const operator of operators) {
    if (timingSafeEqual(presented, operator.digest) && found === undefined) found = operator.name
  }
  return found
}
