// The console's sign-in, sessions, CSRF, roles and failed-login limit, through nginx's console
// listener on the real stack (Postgres as ringpay_console).
import t from 'tap'
import { request } from 'undici'
import { adminDb, closeConsoleDb, ConsoleClient, consoleDb, consoleUrl, createOperator, csrfOf, problemCodeOf } from './helpers.ts'
import { consoleLimits } from '../limits.ts'

t.teardown(closeConsoleDb)

t.test('signed out: pages redirect to the sign-in, actions are refused', async (t) => {
  const c = new ConsoleClient()
  const page = await c.get('/payments')
  t.equal(page.status, 303)
  t.equal(page.headers.location, '/login')
  const post = await c.post('/flagged/merchant_demo/co_x/resolve', { action: 'cancel', reason: 'x' })
  t.equal(post.status, 401)
  t.equal(problemCodeOf(post.text), 'unauthenticated')
  const metrics = await c.get('/metrics')
  t.equal(metrics.status, 404, 'the service\'s metrics are not served through nginx')
})

t.test('the console listener speaks TLS only, with a certificate of the stack\'s CA', async (t) => {
  const url = new URL(consoleUrl())
  t.equal(url.protocol, 'https:')
  const plain = await request(`http://${url.host}/login`)
  await plain.body.text()
  t.equal(plain.statusCode, 400, 'plain HTTP on the TLS port: nginx\'s 400')
  const login = await new ConsoleClient().get('/login')
  t.equal(login.status, 200, 'https verified with the stack\'s CA (trusted by loadStackInfo)')
})

t.test('sign-in sets a __Host- session cookie: HttpOnly, Secure, SameSite=Strict; sign-out ends it', async (t) => {
  const op = await createOperator('support')
  const c = new ConsoleClient()
  const login = await c.signIn(op.name, op.password)
  t.equal(login.status, 303)
  t.equal(login.headers.location, '/payments')
  const cookie = [login.headers['set-cookie']].flat().find((l) => l?.startsWith('__Host-ringpay_console='))!
  t.match(cookie, /; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=\d+$/)
  const id = cookie.split(';')[0]!.split('=')[1]!
  t.match(id, /^[A-Za-z0-9_-]{43}$/, '32 random bytes')
  const { rows } = await consoleDb().query('SELECT id_digest FROM console_sessions WHERE operator = $1', [op.name])
  t.equal(rows.length, 1)
  t.not(rows[0].id_digest, id, 'Postgres keeps only a digest of the id')
  const page = await c.get('/payments')
  t.equal(page.status, 200)
  t.match(page.text, `${op.name} (support)`)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.equal(page.headers['x-frame-options'], 'DENY')
  const out = await c.post('/logout', { _csrf: csrfOf(page.text) })
  t.equal(out.status, 303)
  t.equal((await consoleDb().query('SELECT 1 FROM console_sessions WHERE operator = $1', [op.name])).rowCount, 0, 'the session is gone')
  const replayed = new ConsoleClient()
  replayed.cookies.set('__Host-ringpay_console', id)
  t.equal((await replayed.get('/payments')).status, 303, 'the old cookie signs nobody in')
})

t.test('a new sign-in in the same browser ends its old session', async (t) => {
  const op = await createOperator('support')
  const c = new ConsoleClient()
  await c.signIn(op.name, op.password)
  const first = c.cookies.get('__Host-ringpay_console')!
  await c.signIn(op.name, op.password)
  t.not(c.cookies.get('__Host-ringpay_console'), first, 'a new id')
  t.equal((await consoleDb().query('SELECT 1 FROM console_sessions WHERE operator = $1', [op.name])).rowCount, 1, 'only the new session is left')
})

t.test('an expired session signs nobody in', async (t) => {
  const op = await createOperator('support')
  const c = new ConsoleClient()
  t.equal((await c.signIn(op.name, op.password)).status, 303)
  await consoleDb().query("UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE operator = $1", [op.name])
  t.equal((await c.get('/payments')).status, 303)
})

t.test('the sign-in form needs its own token (login CSRF)', async (t) => {
  const op = await createOperator('support')
  const c = new ConsoleClient()
  await c.get('/login')
  const res = await c.post('/login', { _csrf: 'forged', name: op.name, password: op.password })
  t.equal(res.status, 403)
  t.equal(problemCodeOf(res.text), 'csrf_invalid')
})

t.test('CSRF: a state-changing form without the session token, or from another origin, is refused', async (t) => {
  const op = await createOperator('operator')
  const c = new ConsoleClient()
  await c.signIn(op.name, op.password)
  const page = await c.get('/payments')
  const token = csrfOf(page.text)
  const none = await c.post('/dead-letters/replay', { which: 'all', reason: 'test' })
  t.equal(none.status, 403)
  t.equal(problemCodeOf(none.text), 'csrf_invalid')
  const wrong = await c.post('/dead-letters/replay', { which: 'all', reason: 'test', _csrf: `${token.slice(1)}x` })
  t.equal(problemCodeOf(wrong.text), 'csrf_invalid')
  const origin = await c.post('/logout', { _csrf: token }, { origin: 'https://evil.example' })
  t.equal(origin.status, 403)
  t.equal(problemCodeOf(origin.text), 'origin_invalid')
  const json = await c.send('POST', '/logout', undefined, { 'content-type': 'application/json' })
  t.equal(json.status, 415, 'forms only')
})

t.test('roles: support and finance may not resolve or replay; operators may not rerun', async (t) => {
  for (const [role, path, form] of [
    ['support', '/flagged/merchant_demo/co_nope/resolve', { action: 'cancel', reason: 'r' }],
    ['finance', '/dead-letters/replay', { which: 'all', reason: 'r' }],
    ['operator', '/reconciliation/rerun', { date: '2026-01-01', reason: 'r' }],
  ] as const) {
    const op = await createOperator(role)
    const c = new ConsoleClient()
    await c.signIn(op.name, op.password)
    const token = csrfOf((await c.get('/payments')).text)
    const res = await c.post(path, { ...form, _csrf: token })
    t.equal(res.status, 403, `${role} ${path}`)
    t.equal(problemCodeOf(res.text), 'forbidden')
  }
  const { rows } = await consoleDb().query("SELECT count(*)::int AS n FROM console_audit WHERE merchant_id = 'merchant_demo' AND checkout_id = 'co_nope'")
  t.equal(rows[0].n, 0, 'a refused role changes and audits nothing')
})

t.test('failed sign-ins: past the limit the name is locked, right password or not', async (t) => {
  const op = await createOperator('operator')
  const c = new ConsoleClient()
  for (let i = 0; i < consoleLimits.loginFailuresPerNameMax; i++) {
    const res = await c.signIn(op.name, `${op.password}-wrong`)
    t.equal(res.status, 401, `failure ${i + 1}`)
  }
  const locked = await c.signIn(op.name, op.password)
  t.equal(locked.status, 429, 'the right password is refused while locked')
  t.match(locked.text, 'Too many failed sign-ins')
  t.notOk(c.cookies.has('__Host-ringpay_console'), 'no session')
  const unknown = await new ConsoleClient().signIn(`nobody-${op.name}`, 'whatever-password')
  t.equal(unknown.status, 401, 'an unknown name: the same answer as a wrong password')
  // The window passes: the name may try again.
  await adminDb().query("UPDATE console_login_failures SET failed_at = failed_at - $2 * interval '1 millisecond' WHERE name = $1", [op.name, consoleLimits.loginFailureWindowMs])
  t.equal((await c.signIn(op.name, op.password)).status, 303)
  t.equal((await consoleDb().query('SELECT 1 FROM console_login_failures WHERE name = $1', [op.name])).rowCount, 0, 'a success forgets the failures')
})
