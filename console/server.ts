// The console's HTTP handler: routes, sign-in, sessions, CSRF and roles on every request.
//
//   GET  /login, POST /login, POST /logout
//   GET  /payments?checkout_id&merchant_id&status&from&to&after      search (keyset pages)
//   GET  /payments/{merchant_id}/{checkout_id}                       timeline, states side by side
//   GET  /flagged, POST /flagged/{merchant_id}/{checkout_id}/resolve (operator)
//   GET  /dead-letters, POST /dead-letters/replay                    (operator)
//   GET  /reconciliation[?after=|before=<cursor>], /reconciliation/runs/{id}[/discrepancies.csv], POST /reconciliation/rerun (finance)
//   GET  /health
//   GET  /healthz, /readyz, /metrics (127.0.0.1 only: nginx answers 404 for them)
//
// Served on 127.0.0.1 behind nginx's console listener (TLS). Pages are HTML; errors an HTML page
// with the problem's stable code.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { clientIpOf } from '../payment-svc/client-identity.ts'
import { ProblemError } from '../payment-svc/errors.ts'
import { readBody, serveProbes, splitUrl } from '../payment-svc/http-io.ts'
import { checkCsrf, cookieHeader, cookiesOf, endSessionOf, loginCsrfCookie, newToken, sessionCookie, sessionOf, signIn, signOut, tokensEqual, type Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { deadLettersPage, replay } from './dead-letters.ts'
import { ConsoleProblem } from './errors.ts'
import { flaggedPage, resolveActions, resolveFlagged, resolveNotice, type ResolveAction } from './flagged.ts'
import { healthPage } from './health.ts'
import { esc, html, page, script, stylesheet } from './html.ts'
import { consoleLimits as limits } from './limits.ts'
import { searchPage, timelinePage } from './payments.ts'
import { discrepanciesCsv, rerun, runPage, runsPage } from './reconciliation.ts'
import { mayDo, type ConsoleAction } from './roles.ts'

export interface ServerDeps {
  registry: Registry
  onRequest?: (route: string, status: number, seconds: number) => void
  onLoginFailure?: (code: string) => void
}

/** Every answer: no caching of operator data, no framing, only the console's own script and style. */
const securityHeaders: Record<string, string> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the console's own forms.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
  'strict-transport-security': 'max-age=31536000',
}

function send (res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { ...securityHeaders, 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), ...headers })
  res.end(body)
}

function redirect (res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { ...securityHeaders, location, 'content-length': '0', ...headers })
  res.end()
}

async function formOf (req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/x-www-form-urlencoded') throw new ConsoleProblem('unsupported_media_type')
  return new URLSearchParams(await readBody(req, limits.bodyBytesMax))
}

function reasonOf (form: URLSearchParams): string {
  const reason = (form.get('reason') ?? '').trim()
  if (reason === '' || reason.length > limits.reasonLengthMax) throw new ConsoleProblem('validation_failed', `say why (1-${limits.reasonLengthMax} characters): it is audited`)
  return reason
}

function loginPage (req: IncomingMessage, res: ServerResponse, status: number, error?: string): void {
  // One token per browser while it signs in: a second tab (or the favicon's redirect) must not
  // make the first tab's form stale.
  const current = cookiesOf(req).get(loginCsrfCookie)
  const token = current !== undefined && /^[A-Za-z0-9_-]{43}$/.test(current) ? current : newToken()
  send(res, status, page('Sign in', undefined, html`
${error === undefined ? '' : html`<p class="error" id="login-error">${error}</p>`}
<form method="post" action="/login" id="login">
  <input type="hidden" name="_csrf" value="${token}">
  <p><label>Name <input name="name" autocomplete="username" required></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
  <button type="submit">Sign in</button>
</form>`), { 'set-cookie': cookieHeader(loginCsrfCookie, token, 3600) })
}

function requireRole (session: Session, action: ConsoleAction): void {
  if (!mayDo(session.role, action)) throw new ConsoleProblem('forbidden', `the ${session.role} role may not ${action.replace(/_/g, ' ')}`)
}

async function route (ctx: ConsoleContext, deps: ServerDeps, req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<string> {
  const method = req.method ?? 'GET'
  if (path === '/static/console.css' || path === '/static/console.js') {
    const css = path.endsWith('.css')
    res.writeHead(200, { ...securityHeaders, 'cache-control': 'max-age=300', 'content-type': css ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8' })
    res.end(css ? stylesheet : script)
    return 'static'
  }
  if (path === '/login') {
    if (method === 'GET') {
      loginPage(req, res, 200)
      return 'login.page'
    }
    if (method !== 'POST') throw new ConsoleProblem('method_not_allowed')
    const form = await formOf(req)
    if (!tokensEqual(form.get('_csrf') ?? undefined, cookiesOf(req).get(loginCsrfCookie))) throw new ConsoleProblem('csrf_invalid')
    const name = (form.get('name') ?? '').trim().toLowerCase()
    const password = form.get('password') ?? ''
    try {
      const { sessionId } = await signIn(ctx.pool, name, password, clientIpOf(req, ctx.trustedProxies))
      // No session survives a sign-in in the same browser (nor one planted in it before).
      await endSessionOf(ctx.pool, req)
      ctx.log.info({ audit: true, operator: name, client_ip: clientIpOf(req, ctx.trustedProxies) }, 'console sign-in')
      redirect(res, '/payments', { 'set-cookie': [cookieHeader(sessionCookie, sessionId, limits.sessionAbsoluteMs / 1000), cookieHeader(loginCsrfCookie, '', 0)] })
      return 'login'
    } catch (error) {
      if (!(error instanceof ConsoleProblem)) throw error
      deps.onLoginFailure?.(error.code)
      ctx.log.warn({ name: name.slice(0, 64), client_ip: clientIpOf(req, ctx.trustedProxies), code: error.code }, 'console sign-in refused')
      loginPage(req, res, error.status, error.message)
      return 'login'
    }
  }
  const session = await sessionOf(ctx.pool, req)
  if (session === undefined) {
    if (method === 'GET' && path !== '/favicon.ico') {
      redirect(res, '/login')
      return 'unauthenticated'
    }
    throw new ConsoleProblem('unauthenticated')
  }
  if (method === 'POST') {
    const form = await formOf(req)
    checkCsrf(req, form, session.csrfToken)
    return await post(ctx, res, session, path, form)
  }
  if (method !== 'GET') throw new ConsoleProblem('method_not_allowed')
  if (path === '/') {
    redirect(res, '/payments')
    return 'root'
  }
  if (path === '/payments') {
    send(res, 200, await searchPage(ctx, session, query))
    return 'payments.search'
  }
  // A payment is its merchant's checkout id (issue #17 part 5): the path names both.
  const payment = /^\/payments\/([^/]+)\/([^/]+)$/.exec(path)
  if (payment !== null) {
    send(res, 200, await timelinePage(ctx, session, { merchant_id: decodeURIComponent(payment[1]!), checkout_id: decodeURIComponent(payment[2]!) }))
    return 'payments.timeline'
  }
  if (path === '/flagged') {
    send(res, 200, await flaggedPage(ctx, session, query))
    return 'flagged'
  }
  if (path === '/dead-letters') {
    send(res, 200, await deadLettersPage(ctx, session))
    return 'dead_letters'
  }
  if (path === '/reconciliation') {
    send(res, 200, await runsPage(ctx, session, query))
    return 'reconciliation'
  }
  const csv = /^\/reconciliation\/runs\/(\d+)\/discrepancies\.csv$/.exec(path)
  if (csv !== null) {
    await discrepanciesCsv(ctx, res, csv[1]!)
    return 'reconciliation.csv'
  }
  const run = /^\/reconciliation\/runs\/(\d+)$/.exec(path)
  if (run !== null) {
    send(res, 200, await runPage(ctx, session, run[1]!))
    return 'reconciliation.run'
  }
  if (path === '/health') {
    send(res, 200, await healthPage(ctx, session))
    return 'health'
  }
  throw new ConsoleProblem('not_found')
}

async function post (ctx: ConsoleContext, res: ServerResponse, session: Session, path: string, form: URLSearchParams): Promise<string> {
  if (path === '/logout') {
    await signOut(ctx.pool, session)
    redirect(res, '/login', { 'set-cookie': cookieHeader(sessionCookie, '', 0) })
    return 'logout'
  }
  const resolve = /^\/flagged\/([A-Za-z0-9_-]{1,64})\/([A-Za-z0-9_-]{1,64})\/resolve$/.exec(path)
  if (resolve !== null) {
    requireRole(session, 'resolve_flagged')
    const action = form.get('action') ?? ''
    if (!(resolveActions as readonly string[]).includes(action)) throw new ConsoleProblem('validation_failed', `action is one of ${resolveActions.join(', ')}`)
    const id = { merchant_id: resolve[1]!, checkout_id: resolve[2]! }
    const result = await resolveFlagged(ctx, session, id, action as ResolveAction, reasonOf(form))
    send(res, 200, await timelinePage(ctx, session, id, resolveNotice(result)))
    return 'flagged.resolve'
  }
  if (path === '/dead-letters/replay') {
    requireRole(session, 'replay_dead_letters')
    const notice = await replay(ctx, session, form.get('which') ?? '', reasonOf(form))
    send(res, 200, await deadLettersPage(ctx, session, notice))
    return 'dead_letters.replay'
  }
  if (path === '/reconciliation/rerun') {
    requireRole(session, 'rerun_reconciliation')
    const notice = await rerun(ctx, session, form.get('date') ?? '', reasonOf(form))
    send(res, 200, await runsPage(ctx, session, undefined, notice))
    return 'reconciliation.rerun'
  }
  throw new ConsoleProblem('not_found')
}

/** The server's request handler. Rejects only on a bug. */
export async function handle (ctx: ConsoleContext, deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now()
  let routeName = 'other'
  try {
    const url = req.url ?? '/'
    if (url.length > limits.urlBytesMax) throw new ConsoleProblem('not_found')
    const { path, query } = splitUrl(url)
    const probe = await serveProbes(path, res, { registry: deps.registry, keysUnavailableReason: () => undefined })
    if (probe !== undefined) {
      routeName = probe
      return
    }
    routeName = await route(ctx, deps, req, res, path, query ?? new URLSearchParams())
  } catch (error) {
    const problem = asProblem(ctx, error, routeName)
    if (res.headersSent) {
      res.destroy()
    } else {
      send(res, problem.status, page(`Error: ${problem.code}`, undefined, html`<p class="error" id="problem" data-code="${problem.code}">${problem.message}</p><p><a href="/payments">Back</a></p>`))
    }
  } finally {
    deps.onRequest?.(routeName, res.statusCode, (performance.now() - startedAt) / 1000)
  }
}

function asProblem (ctx: ConsoleContext, error: unknown, routeName: string): ConsoleProblem {
  if (error instanceof ConsoleProblem) return error
  // http-io's body reader answers with the merchant API's codes.
  if (error instanceof ProblemError && error.code === 'body_too_large') return new ConsoleProblem('body_too_large', undefined, { cause: error })
  if (error instanceof URIError) return new ConsoleProblem('not_found')
  ctx.log.error({ err: error, route: routeName }, 'console request failed')
  return new ConsoleProblem('internal_error')
}

export { esc }
