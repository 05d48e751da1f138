// Sign-in, sessions and CSRF (SECURITY.md, "The operators' console").
//
// - A session id is 32 random bytes (base64url) in a `__Host-` cookie: HttpOnly, Secure,
//   SameSite=Strict, Path=/. Postgres keeps only its SHA-256, with the operator, a form token and
//   two ends (idle: sessionIdleMs after the last request; absolute: sessionAbsoluteMs after sign-in).
// - Every state-changing form carries the session's form token (`_csrf`), compared in constant
//   time; a POST whose Origin header names another origin is refused too. The sign-in form, which
//   has no session yet, carries a token matching a short-lived cookie of its own (double submit).
// - Failed sign-ins are recorded by name and client address; past loginFailuresPerNameMax (or
//   PerIpMax) in loginFailureWindowMs the name (address) is refused even with the right password,
//   until the window has passed. A success forgets the name's failures.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type pg from 'pg'
import { ConsoleProblem } from './errors.ts'
import { consoleLimits as limits } from './limits.ts'
import { dummyHash, verifyPassword } from './passwords.ts'
import { isConsoleRole, type ConsoleRole } from './roles.ts'

export const sessionCookie = '__Host-ringpay_console'
export const loginCsrfCookie = '__Host-ringpay_console_login'

export interface Session {
  operator: string
  role: ConsoleRole
  csrfToken: string
  idDigest: string
}

function digest (id: string): string {
  return createHash('sha256').update(id).digest('hex')
}

export function newToken (): string {
  return randomBytes(32).toString('base64url')
}

export function cookiesOf (req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 1) continue
    const name = part.slice(0, eq).trim()
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim())
  }
  return out
}

export function cookieHeader (name: string, value: string, maxAgeS: number): string {
  return `${name}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeS}`
}

/** Constant-time equality of two tokens (false when either is missing). */
export function tokensEqual (a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a === '' || b === '') return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The session of the request's cookie, extended (idle end), or undefined. */
export async function sessionOf (pool: pg.Pool, req: IncomingMessage, nowMs = Date.now()): Promise<Session | undefined> {
  const id = cookiesOf(req).get(sessionCookie)
  if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined
  const idDigest = digest(id)
  const { rows } = await pool.query<{ operator: string, role: string, csrf_token: string }>(
    `UPDATE console_sessions s SET last_seen_at = $2, expires_at = LEAST(s.created_at + $4 * interval '1 millisecond', $2 + $3 * interval '1 millisecond')
       FROM console_operators o
      WHERE s.id_digest = $1 AND s.expires_at > $2 AND o.name = s.operator AND o.disabled_at IS NULL
      RETURNING s.operator, o.role, s.csrf_token`,
    [idDigest, new Date(nowMs), limits.sessionIdleMs, limits.sessionAbsoluteMs])
  const row = rows[0]
  if (row === undefined || !isConsoleRole(row.role)) return undefined
  return { operator: row.operator, role: row.role, csrfToken: row.csrf_token, idDigest }
}

/**
 * Checks a sign-in. Throws login_locked (before the password is even checked) while the name or
 * address is over its limit, login_failed for a wrong name or password (recorded). Returns the new
 * session's cookie value.
 */
export async function signIn (pool: pg.Pool, name: string, password: string, clientIp: string, nowMs = Date.now()): Promise<{ sessionId: string, operator: string }> {
  const since = new Date(nowMs - limits.loginFailureWindowMs)
  const { rows: [counts] } = await pool.query<{ by_name: string, by_ip: string }>(
    `SELECT (SELECT count(*) FROM console_login_failures WHERE name = $1 AND failed_at > $3) AS by_name,
            (SELECT count(*) FROM console_login_failures WHERE client_ip = $2 AND failed_at > $3) AS by_ip`,
    [name, clientIp, since])
  if (Number(counts!.by_name) >= limits.loginFailuresPerNameMax || Number(counts!.by_ip) >= limits.loginFailuresPerIpMax) {
    throw new ConsoleProblem('login_locked')
  }
  const { rows } = await pool.query<{ password_hash: string }>('SELECT password_hash FROM console_operators WHERE name = $1 AND disabled_at IS NULL', [name])
  const stored = rows[0]?.password_hash
  const ok = await verifyPassword(password, stored ?? await dummyHash())
  if (!ok || stored === undefined) {
    await pool.query('INSERT INTO console_login_failures (name, client_ip, failed_at) VALUES ($1, $2, $3)', [name.slice(0, 64), clientIp, new Date(nowMs)])
    throw new ConsoleProblem('login_failed')
  }
  await pool.query('DELETE FROM console_login_failures WHERE name = $1', [name])
  await sweepLoginFailures(pool, since, nowMs)
  const sessionId = newToken()
  await pool.query(
    `INSERT INTO console_sessions (id_digest, operator, csrf_token, created_at, last_seen_at, expires_at)
     VALUES ($1, $2, $3, $4, $4, $5)`,
    [digest(sessionId), name, newToken(), new Date(nowMs), new Date(nowMs + limits.sessionIdleMs)])
  // Expired sessions are of no use to anyone: swept on sign-in (indexed), no timer needed.
  await pool.query('DELETE FROM console_sessions WHERE expires_at < $1', [new Date(nowMs)])
  return { sessionId, operator: name }
}

let lastSweepMs = 0
/** Failures older than the window count for nothing: dropped, at most once per sweep interval per process. */
async function sweepLoginFailures (pool: pg.Pool, since: Date, nowMs: number): Promise<void> {
  if (nowMs - lastSweepMs < limits.loginFailuresSweepIntervalMs) return
  lastSweepMs = nowMs
  await pool.query('DELETE FROM console_login_failures WHERE failed_at < $1', [since])
}

/** Ends the session of a cookie, if it names one (a new sign-in replaces the browser's old session). */
export async function endSessionOf (pool: pg.Pool, req: IncomingMessage): Promise<void> {
  const id = cookiesOf(req).get(sessionCookie)
  if (id !== undefined && /^[A-Za-z0-9_-]{43}$/.test(id)) await pool.query('DELETE FROM console_sessions WHERE id_digest = $1', [digest(id)])
}

export async function signOut (pool: pg.Pool, session: Session): Promise<void> {
  await pool.query('DELETE FROM console_sessions WHERE id_digest = $1', [session.idDigest])
}

/**
 * A state-changing request must come from a console page: the Origin header, when the browser
 * sends one, names this console; the form's `_csrf` is the session's token.
 */
export function checkCsrf (req: IncomingMessage, form: URLSearchParams, expected: string): void {
  const origin = req.headers.origin
  // nginx passes the host and port the browser used in X-Forwarded-Host (its Host has no port).
  const forwardedHost = req.headers['x-forwarded-host']
  const host = typeof forwardedHost === 'string' && forwardedHost !== '' ? forwardedHost : req.headers.host
  if (origin !== undefined && origin !== 'null' && host !== undefined && origin !== `https://${host}`) throw new ConsoleProblem('origin_invalid')
  if (origin === 'null') throw new ConsoleProblem('origin_invalid')
  if (!tokensEqual(form.get('_csrf') ?? undefined, expected)) throw new ConsoleProblem('csrf_invalid')
}
