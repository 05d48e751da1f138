// What the console's tests share: operators made for one test (unique names, in Postgres as the
// console's own role), and a small cookie-keeping client of the console through nginx.

import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { request } from 'undici'
import { loadStackInfo } from '../../test/helpers/stack.ts'
import { hashPassword } from '../passwords.ts'
import type { ConsoleRole } from '../roles.ts'

export function consoleUrl (): string {
  const stack = loadStackInfo()
  if (stack.console === undefined) throw new Error('the stack info has no console (an older stack?)')
  return stack.console.url
}

let pool: pg.Pool | undefined
/** As ringpay_console: operators and sessions are its tables alone. */
export function consoleDb (): pg.Pool {
  pool ??= new pg.Pool({ connectionString: loadStackInfo().databaseUrls.console, max: 2 })
  return pool
}
let adminPool: pg.Pool | undefined
/** The stack's admin role: only for what a test must fake (time passing, a flag the PSP raised). */
export function adminDb (): pg.Pool {
  adminPool ??= new pg.Pool({ connectionString: loadStackInfo().databaseUrl, max: 2 })
  return adminPool
}
export async function closeConsoleDb (): Promise<void> {
  await Promise.all([pool?.end(), adminPool?.end()])
  pool = undefined
  adminPool = undefined
}

export interface TestOperator { name: string, password: string, role: ConsoleRole }

/** A fresh operator (unique name: tests run in parallel on one stack). */
export async function createOperator (role: ConsoleRole, prefix = 't'): Promise<TestOperator> {
  const name = `${prefix}-${role}-${randomBytes(5).toString('hex')}`
  const password = randomBytes(18).toString('base64url')
  await consoleDb().query('INSERT INTO console_operators (name, role, password_hash) VALUES ($1, $2, $3)', [name, role, await hashPassword(password)])
  return { name, password, role }
}

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, text: string }

/** A browser in miniature: keeps cookies, never follows redirects, sends forms. */
export class ConsoleClient {
  readonly cookies = new Map<string, string>()
  readonly base: string

  constructor (base = consoleUrl()) {
    this.base = base
  }

  async send (method: 'GET' | 'POST', path: string, form?: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
    const res = await request(`${this.base}${path}`, {
      method,
      headers: {
        ...(this.cookies.size === 0 ? {} : { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') }),
        ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        ...headers,
      },
      body: form === undefined ? null : new URLSearchParams(form).toString(),
    })
    const text = await res.body.text()
    const setCookie = res.headers['set-cookie']
    for (const line of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq)
      const value = pair!.slice(eq + 1)
      if (value === '' || /Max-Age=0/.test(line)) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    return { status: res.statusCode, headers: res.headers, text }
  }

  get (path: string): Promise<Answer> {
    return this.send('GET', path)
  }

  post (path: string, form: Record<string, string>, headers?: Record<string, string>): Promise<Answer> {
    return this.send('POST', path, form, headers)
  }

  /** Signs in through the login form; the answer of the POST. */
  async signIn (name: string, password: string): Promise<Answer> {
    const form = await this.get('/login')
    return this.post('/login', { _csrf: csrfOf(form.text), name, password })
  }
}

export function csrfOf (html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html)
  if (match === null) throw new Error('no form token on the page')
  return match[1]!
}

export function problemCodeOf (html: string): string | undefined {
  return /data-code="([a-z_]+)"/.exec(html)?.[1]
}
