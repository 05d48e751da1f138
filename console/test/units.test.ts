// The console's pieces that need no stack: password hashing, roles, the CSRF and origin checks,
// HTML escaping, the three-way state comparison, the search filters.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { checkCsrf, cookieHeader, tokensEqual } from '../auth.ts'
import { ConsoleProblem } from '../errors.ts'
import { esc, html } from '../html.ts'
import { hashPassword, verifyPassword } from '../passwords.ts'
import { compareStates, decodeCursor, encodeCursor, filtersOf, isValidPaymentId, paymentPath } from '../payments.ts'
import { mayDo } from '../roles.ts'

t.test('passwords: scrypt with a per-user salt, verified in constant time', async (t) => {
  const a = await hashPassword('correct horse battery')
  const b = await hashPassword('correct horse battery')
  t.match(a, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/)
  t.not(a, b, 'two hashes of one password differ (salt)')
  t.equal(await verifyPassword('correct horse battery', a), true)
  t.equal(await verifyPassword('correct horse batterY', a), false)
  t.equal(await verifyPassword('correct horse battery', 'plain'), false, 'a malformed stored value never matches')
  await t.rejects(hashPassword('short'), { code: 'password_policy' })
})

t.test('roles: support only looks; operators resolve and replay; finance reruns', async (t) => {
  t.equal(mayDo('support', 'resolve_flagged'), false)
  t.equal(mayDo('support', 'replay_dead_letters'), false)
  t.equal(mayDo('support', 'rerun_reconciliation'), false)
  t.equal(mayDo('operator', 'resolve_flagged'), true)
  t.equal(mayDo('operator', 'replay_dead_letters'), true)
  t.equal(mayDo('operator', 'rerun_reconciliation'), false)
  t.equal(mayDo('finance', 'rerun_reconciliation'), true)
  t.equal(mayDo('finance', 'resolve_flagged'), false)
})

t.test('CSRF: the session token and, when sent, this origin', async (t) => {
  const req = (headers: Record<string, string>) => ({ headers: { host: 'console.example:8443', ...headers } }) as unknown as IncomingMessage
  const form = (token?: string) => new URLSearchParams(token === undefined ? {} : { _csrf: token })
  const codeOf = (fn: () => void): string | undefined => {
    try {
      fn()
      return undefined
    } catch (error) {
      if (error instanceof ConsoleProblem) return error.code
      throw error
    }
  }
  t.equal(codeOf(() => checkCsrf(req({}), form('tok'), 'tok')), undefined)
  t.equal(codeOf(() => checkCsrf(req({ origin: 'https://console.example:8443' }), form('tok'), 'tok')), undefined)
  t.equal(codeOf(() => checkCsrf(req({}), form(), 'tok')), 'csrf_invalid', 'no token')
  t.equal(codeOf(() => checkCsrf(req({}), form('tok2'), 'tok')), 'csrf_invalid', 'another token')
  t.equal(codeOf(() => checkCsrf(req({ origin: 'https://evil.example' }), form('tok'), 'tok')), 'origin_invalid', 'another origin')
  t.equal(codeOf(() => checkCsrf(req({ origin: 'null' }), form('tok'), 'tok')), 'origin_invalid', 'an opaque origin')
  t.equal(codeOf(() => checkCsrf(req({ host: 'console.example', 'x-forwarded-host': 'console.example:8443', origin: 'https://console.example:8443' }), form('tok'), 'tok')), undefined,
    'behind nginx: the host and port the browser used')
  t.equal(codeOf(() => checkCsrf(req({ host: 'console.example', 'x-forwarded-host': 'console.example:8443', origin: 'https://console.example:9999' }), form('tok'), 'tok')), 'origin_invalid')
  t.equal(tokensEqual('', ''), false, 'empty tokens never match')
  t.equal(cookieHeader('__Host-x', 'v', 60), '__Host-x=v; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=60')
})

t.test('html: every value escaped', async (t) => {
  t.equal(esc('<script>"&\''), '&lt;script&gt;&quot;&amp;&#39;')
  t.equal(html`<td>${'<b>'}</td>${[html`<i>${'&'}</i>`]}`.html, '<td>&lt;b&gt;</td><i>&amp;</i>')
})

t.test('states: differences between the node, Postgres and the PSP are named', async (t) => {
  const node = { status: 'succeeded', version: 4, amount: 100, currency: 'EUR', pspReference: 'ch_1' }
  t.same([...compareStates(node, { ...node }, { status: 'succeeded', pspReference: 'ch_1' })], [])
  t.same([...compareStates(node, { ...node, status: 'processing', version: 2 }, { status: 'succeeded' })].sort(), ['status', 'version'])
  t.same([...compareStates(node, node, { status: 'failed', pspReference: 'ch_1' })], ['psp_status'])
  t.same([...compareStates({ ...node, status: 'processing', pspReference: '' }, { ...node, status: 'processing', pspReference: '' }, { status: 'pending' })], [], 'in flight: pending at the PSP is expected')
  t.same([...compareStates(node, node, { status: 'succeeded', pspReference: 'ch_2' })], ['psp_reference'])
  t.same([...compareStates(node, node, { status: 'flagged' })], ['psp_status'])
})

t.test('search filters: validated', async (t) => {
  t.same(filtersOf(new URLSearchParams('checkout_id=co_1&status=failed&from=2026-01-01&merchant_id=')), { checkoutId: 'co_1', status: 'failed', from: '2026-01-01' })
  t.throws(() => filtersOf(new URLSearchParams('status=nope')), { code: 'validation_failed' })
  t.throws(() => filtersOf(new URLSearchParams('from=2026-13-45')), { code: 'validation_failed' })
  t.throws(() => filtersOf(new URLSearchParams('checkout_id=a b')), { code: 'validation_failed' })
  t.same(filtersOf(new URLSearchParams('merchant_id=merchant_demo')), { merchantId: 'merchant_demo' })
  t.throws(() => filtersOf(new URLSearchParams('merchant_id=a/b')), { code: 'validation_failed' }, 'a merchant id is what API keys name')
})

t.test('a payment is its merchant\'s checkout id: paths and page cursors name both', async (t) => {
  t.equal(paymentPath({ merchant_id: 'merchant_demo', checkout_id: 'co_1' }), '/payments/merchant_demo/co_1')
  t.equal(isValidPaymentId({ merchant_id: 'merchant_demo', checkout_id: 'co_1' }), true)
  t.equal(isValidPaymentId({ merchant_id: '', checkout_id: 'co_1' }), false)
  t.equal(isValidPaymentId({ merchant_id: 'm', checkout_id: '../x' }), false)
  const at = '2026-12-07 21:00:00.123456+00'
  t.same(decodeCursor(encodeCursor(at, { merchant_id: 'merchant_other', checkout_id: 'co_1' })), { at, merchant_id: 'merchant_other', checkout_id: 'co_1' })
  // A cursor from before part 5 (`<at>|<checkout>`) names no payment: refused, not misread.
  t.throws(() => decodeCursor(Buffer.from(`${at}|co_1`).toString('base64url')), { code: 'validation_failed' })
  t.throws(() => decodeCursor(Buffer.from(`${at}|m|co_1|x`).toString('base64url')), { code: 'validation_failed' })
  t.throws(() => decodeCursor(Buffer.from('not a date|m|co_1').toString('base64url')), { code: 'validation_failed' })
})
