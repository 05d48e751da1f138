// Hostile input (issue #7): a seeded fuzzer against the public API through the real nginx.
// Random and boundary bodies, headers, sizes, encodings, methods, paths and slow clients; for every
// case: no 5xx, problem+json with a registered code for every error our nodes answer, nothing
// stored for a rejected create, exactly what was sent stored for an accepted one, no internal view
// through the public listener. At the end every node is ready and still the same process.
//
//   RINGPAY_FUZZ_SEED=<uint32>   replay a run (the seed is printed first)
//   RINGPAY_FUZZ_CASES=<n>       number of generated cases (default below)
//   RINGPAY_FUZZ_CASE=<i>        run only case i of the seed (or `slow:<i>` for a slow-client case)

import { randomBytes, randomInt } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { signWebhook } from '../../lib/webhook-signature.ts'
import { problems } from '../../payment-svc/errors.ts'
import { getInternal, type ApiResponse } from '../helpers/api.ts'
import {
  authorizationVariants, checkoutIdVariants, contentTypePool, deepJson, describeRequest, encodedBody, encodeRequest,
  knownPaymentMethods, luhnDigits, mutateFields, objectText, oddBodyText, Prng, sendRaw, validFields, validIdCandidates,
  withInvalidUtf8, type Field, type HeaderList, type RawOutcome, type RawRequest, type SlowSend,
} from '../helpers/fuzz.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const publicUrl = new URL(stack.publicUrl)
const host = publicUrl.hostname
const port = Number(publicUrl.port)
const demoKey = stack.apiKeys.merchant_demo
const otherKey = stack.apiKeys.merchant_other
const merchantByKey = new Map([[demoKey, 'merchant_demo'], [otherKey, 'merchant_other']])

/** Sized so the file takes ≲ 30 s on the 2-core machine while other test files run. */
const defaultCases = 800
const concurrentCases = 6
/** One ordinary request: nothing legitimate takes this long (long-polls here wait ≤ 200 ms). */
const requestTimeoutMs = 20_000
/** nginx's client_header_timeout and client_body_timeout (scripts/stack/nginx.ts). */
const nginxClientTimeoutMs = 10_000
/** How long past nginx's timeout a stalled slow client may wait for the close. */
const slowCloseMarginMs = 5_000
const readyDeadlineMs = 10_000
const failuresPrintedMax = 25
const bodyBytesMax = 16 * 1024

const seed = process.env.RINGPAY_FUZZ_SEED !== undefined ? Number(process.env.RINGPAY_FUZZ_SEED) >>> 0 : randomInt(0, 2 ** 32 - 1)
const caseCount = process.env.RINGPAY_FUZZ_CASES !== undefined ? Number(process.env.RINGPAY_FUZZ_CASES) : defaultCases
const onlyCase = process.env.RINGPAY_FUZZ_CASE
/** Checkout ids are unique per process, not per seed, so a replay on the same stack starts clean. */
const runTag = [...randomBytes(10)].map((b) => String.fromCharCode(97 + (b % 26))).join('')

// ---------------------------------------------------------------------------------------------
// What a case is and what it expects.

type Route = 'create' | 'get' | 'webhook' | 'other'

interface Step {
  request: RawRequest
  route: Route
  slow?: SlowSend
  /** Merchants the Authorization header may resolve to (by the README's rules); empty = none. */
  merchants?: ReadonlySet<string>
  /** Malformed at the HTTP level: nginx may answer with its own (non-problem) 4xx page. */
  httpLevel?: boolean
  /** nginx's protocol answers allowed for this request beyond 4xx (501 unknown transfer coding, 505). */
  protocolStatuses?: readonly number[]
  /** A stalled slow client: the server must answer 4xx or close within the deadline. */
  stalled?: boolean
  /** An exact answer this step must get (valid requests, idempotency sequences). */
  status?: number | readonly number[]
  code?: string
}

interface FuzzCase {
  name: string
  kind: string
  label: string
  steps: Step[]
  /** Run the steps at once rather than one after the other. */
  concurrent?: boolean
  /** Checkout ids this case may have written; each is checked against what was accepted. */
  ids: string[]
}

interface Ctx { rng: Prng, id: string }

const validBodyFor = (rng: Prng): Field[] => validFields(rng)

function createRequest (opts: {
  idHeaders?: string[]
  auth?: string[]
  contentType?: string[]
  body?: Buffer
  extra?: HeaderList
  framing?: RawRequest['framing']
  target?: string
}): RawRequest {
  const headers: HeaderList = []
  for (const id of opts.idHeaders ?? []) headers.push(['X-PAYMENT-CHECKOUT-ID', id])
  for (const auth of opts.auth ?? []) headers.push(['Authorization', auth])
  for (const type of opts.contentType ?? ['application/json']) headers.push(['Content-Type', type])
  headers.push(...(opts.extra ?? []))
  return { method: 'POST', target: opts.target ?? '/payments', headers, body: opts.body, framing: opts.framing }
}

/** The merchant an Authorization value names under the documented rule `Bearer <key>`. */
function merchantsOf (authValues: readonly string[]): Set<string> {
  const out = new Set<string>()
  const first = authValues[0]
  if (first === undefined) return out
  const match = /^Bearer +(\S+)[ \t]*$/.exec(first.replace(/^[ \t]+/, ''))
  const merchant = match?.[1] !== undefined ? merchantByKey.get(match[1]) : undefined
  if (merchant !== undefined) out.add(merchant)
  return out
}

function simpleCreate (ctx: Ctx, body: Buffer | string, label: string, kind: string, over: {
  contentType?: string[], extra?: HeaderList, framing?: RawRequest['framing'], status?: number, code?: string,
  httpLevel?: boolean, protocolStatuses?: number[], auth?: string[],
} = {}): FuzzCase {
  const auth = over.auth ?? [`Bearer ${demoKey}`]
  return {
    name: '', kind, label, ids: [ctx.id],
    steps: [{
      route: 'create',
      request: createRequest({
        idHeaders: [ctx.id], auth, contentType: over.contentType, extra: over.extra, framing: over.framing,
        body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
      }),
      merchants: merchantsOf(auth), status: over.status, code: over.code, httpLevel: over.httpLevel,
      protocolStatuses: over.protocolStatuses,
    }],
  }
}

// ---------------------------------------------------------------------------------------------
// Generators, one per kind.

const generators: ReadonlyArray<readonly [number, (ctx: Ctx) => FuzzCase]> = [
  [8, function valid (ctx) {
    const fields = validBodyFor(ctx.rng)
    return simpleCreate(ctx, objectText(fields, ctx.rng.pick(['', ' ', '\n'])), 'valid body', 'valid', { status: 202 })
  }],
  [26, function mutation (ctx) {
    const fields = validBodyFor(ctx.rng)
    const labels = Array.from({ length: ctx.rng.int(1, 3) }, () => mutateFields(ctx.rng, fields))
    return simpleCreate(ctx, objectText(fields), labels.join('; '), 'mutation')
  }],
  [6, function oddBody (ctx) {
    const { label, text } = oddBodyText(ctx.rng, objectText(validBodyFor(ctx.rng)))
    return simpleCreate(ctx, text, label, 'odd-body')
  }],
  [5, function deep (ctx) {
    const depth = ctx.rng.pick([64, 1000, 4000, 8000, 20_000, 100_000])
    const { label, text } = deepJson(ctx.rng, depth, validBodyFor(ctx.rng))
    return simpleCreate(ctx, text, label, 'deep-json')
  }],
  [4, function huge (ctx) {
    const fields = validBodyFor(ctx.rng).filter(([k]) => k !== 'description')
    const base = objectText([...fields, ['description', '""']])
    const size = ctx.rng.pick([bodyBytesMax - 1, bodyBytesMax, bodyBytesMax + 1, 20_000, 1024 * 1024])
    const pad = Math.max(0, size - base.length)
    const text = objectText([...fields, ['description', JSON.stringify('d'.repeat(pad))]])
    const framing = ctx.rng.pick(['content-length', 'chunked'] as const)
    return simpleCreate(ctx, text, `${Buffer.byteLength(text)} bytes, ${framing}`, 'huge', { framing })
  }],
  [6, function encoding (ctx) {
    const fields = validBodyFor(ctx.rng)
    if (ctx.rng.chance(0.5)) {
      const { label, body } = withInvalidUtf8(ctx.rng, fields)
      return simpleCreate(ctx, body, `invalid UTF-8: ${label}`, 'encoding')
    }
    const described = [...fields.filter(([k]) => k !== 'description'), ['description', '"Café ☕"'] as Field]
    const { label, body } = encodedBody(ctx.rng, objectText(described))
    const contentType = ctx.rng.pick([['application/json'], ['application/json; charset=utf-16'], ['application/json; charset=utf-8']])
    return simpleCreate(ctx, body, `${label} as ${contentType[0]}`, 'encoding', { contentType })
  }],
  [8, function contentType (ctx) {
    const types = ctx.rng.chance(0.1) ? [] : ctx.rng.chance(0.1) ? ['application/json', 'text/plain'] : [ctx.rng.pick(contentTypePool)]
    const long = types.some((type) => type.length > 4000)
    return simpleCreate(ctx, objectText(validBodyFor(ctx.rng)), `content-type ${JSON.stringify(types).slice(0, 80)}`, 'content-type',
      { contentType: types, httpLevel: long })
  }],
  [8, function checkoutIdHeader (ctx) {
    const variants = [...checkoutIdVariants(ctx.id), luhnDigits(ctx.rng, ctx.rng.int(13, 19), ctx.rng.int(2, 6))]
    const sent = ctx.rng.chance(0.1) ? [ctx.rng.pick(variants), ctx.rng.pick(variants)] : ctx.rng.chance(0.05) ? [] : [ctx.rng.pick(variants)]
    const auth = [`Bearer ${demoKey}`]
    const body = Buffer.from(objectText(validBodyFor(ctx.rng)), 'utf8')
    const ids = [...new Set([ctx.id, ...sent.flatMap(validIdCandidates)])]
    return {
      name: '', kind: 'checkout-id', label: `ids ${JSON.stringify(sent).slice(0, 120)}`, ids,
      steps: [{
        route: 'create', request: createRequest({ idHeaders: sent, auth, body }), merchants: merchantsOf(auth),
        httpLevel: sent.some((id) => id.length > 4000 || /[\r\u0000]/.test(id)),
      }],
    }
  }],
  [8, function authorization (ctx) {
    const variants = authorizationVariants(demoKey, otherKey)
    const auth = ctx.rng.chance(0.1) ? [] : ctx.rng.chance(0.1) ? [ctx.rng.pick(variants), ctx.rng.pick(variants)] : [ctx.rng.pick(variants)]
    const c = simpleCreate(ctx, objectText(validBodyFor(ctx.rng)), `auth ${JSON.stringify(auth).slice(0, 120)}`, 'authorization',
      // nginx itself refuses a second Authorization line (400, its own page).
      { auth, httpLevel: auth.length > 1 || auth.some((a) => a.length > 4000 || a.includes('\u0000')) })
    // Duplicate Authorization headers: the node takes the first; both merchants are plausible to nginx.
    if (auth.length > 1) c.steps[0]!.merchants = new Set([...merchantsOf(auth), ...merchantsOf(auth.slice(1))])
    return c
  }],
  [6, function framing (ctx) {
    const text = objectText(validBodyFor(ctx.rng))
    const body = Buffer.from(text, 'utf8')
    const options: Array<[string, HeaderList, RawRequest['framing'], number[]]> = [
      ['negative length', [['Content-Length', '-1']], 'none', []],
      ['non-numeric length', [['Content-Length', 'abc']], 'none', []],
      ['double length', [['Content-Length', `${body.length}, ${body.length}`]], 'none', []],
      ['two lengths', [['Content-Length', String(body.length)], ['Content-Length', String(body.length + 1)]], 'none', []],
      ['short length', [['Content-Length', String(Math.floor(body.length / 2))]], 'none', []],
      ['length and chunked', [['Content-Length', String(body.length)]], 'chunked', []],
      ['gzip transfer coding', [['Transfer-Encoding', 'gzip']], 'none', [501]],
      ['chunked, gzip', [['Transfer-Encoding', 'chunked, gzip']], 'none', [501]],
      ['huge declared length', [['Content-Length', '99999999999999999999']], 'none', []],
      ['no length', [], 'none', []],
      ['expect continue', [['Expect', '100-continue']], 'content-length', []],
      ['expect other', [['Expect', 'something']], 'content-length', []],
      ['gzip content coding', [['Content-Encoding', 'gzip']], 'content-length', []],
      ['spoofed internal token', [['X-Ringpay-Internal-Token', stack.internalTokens.processor]], 'content-length', []],
      ['forwarded headers', [['X-Forwarded-For', '10.0.0.1, ::1'], ['X-Request-Id', '../../etc/passwd'], ['Forwarded', 'for=evil']], 'content-length', []],
      ['underscore id header', [['X_PAYMENT_CHECKOUT_ID', ctx.id]], 'content-length', []],
      ['headers over 16 KiB', Array.from({ length: 3 }, (_, i): [string, string] => [`X-Pad-${i}`, 'p'.repeat(7000)]), 'content-length', []],
      ['many headers', Array.from({ length: 300 }, (_, i): [string, string] => [`X-H${i}`, 'v']), 'content-length', []],
      ['obs-fold', [['X-Folded', 'a\r\n b']], 'content-length', []],
      ['header without colon value', [['X-Empty', '']], 'content-length', []],
      ['HTTP/1.0', [], 'content-length', []],
    ]
    const [label, extra, framing, protocolStatuses] = ctx.rng.pick(options)
    const c = simpleCreate(ctx, body, label, 'framing', { extra, framing, httpLevel: true, protocolStatuses })
    if (label === 'HTTP/1.0') c.steps[0]!.request.version = 'HTTP/1.0'
    if (framing === 'none') c.steps[0]!.request.body = body
    return c
  }],
  [8, function get (ctx) {
    const existing = ctx.rng.chance(0.5)
    const steps: Step[] = []
    if (existing) steps.push(validCreateStep(ctx, validBodyFor(ctx.rng)))
    const id = ctx.id
    const targets = [
      `/payments/${id}`, `/payments/${id}/`, `/payments/${id}/x`, `/payments//${id}`, `/payments/%${id}`, `/payments/${id}%00`,
      `/payments/%2e%2e`, '/payments/..', '/payments/.', `/payments/%${id.charCodeAt(0).toString(16)}${id.slice(1)}`, '/payments/%ZZ',
      '/payments/%', `/payments/${'a'.repeat(65)}`, `/payments/${'a'.repeat(1000)}`, `/payments/${'a'.repeat(9000)}`,
      `/payments/${id}ü`, `/payments/${id}?wait_ms=${ctx.rng.pick(['-1', 'abc', '30001', '1e3', '0x10', '', '%31%30', '99', '1&wait_ms=99999'])}`,
      `/payments/${id}?wait_ms=50&after_version=${ctx.rng.pick(['-1', '99999999999999999', 'x', '0', '1'])}`, `/payments/${id}?%zz`,
      `/payments/../internal/payments/${id}`, `/payments/%2e%2e/internal/payments/${id}`, `/internal/payments/${id}`,
      `/internal/payments/../../payments/${id}`, `/internal/payments/${id}/../../../payments/${id}`, `/%2Fpayments/${id}`,
      `/payments/${id}/../../internal/payments/${id}`, `//internal/payments/${id}`, `/payments/${id}#frag`, `/payments/${id};x=1`,
      `http://evil.example/payments/${id}`, `/payments/${id} HTTP/1.1\r\nX-Smuggled: 1\r\n\r\nGET /payments/${id}`,
    ]
    const target = ctx.rng.pick(targets)
    const auth = ctx.rng.pick([[`Bearer ${demoKey}`], [`Bearer ${otherKey}`], [], [`Bearer ${demoKey}`]])
    const headers: HeaderList = auth.map((a): [string, string] => ['Authorization', a])
    if (ctx.rng.chance(0.3)) headers.push(['X-Ringpay-Internal-Token', stack.internalTokens.processor])
    if (ctx.rng.chance(0.2)) headers.push(['X-PAYMENT-CHECKOUT-ID', ctx.rng.pick([id, `${id}x`, ''])])
    const method = ctx.rng.pick(['GET', 'GET', 'GET', 'HEAD'])
    steps.push({
      route: 'get', request: { method, target, headers }, merchants: merchantsOf(auth),
      httpLevel: target.length > 4000 || /[\r#]|^http|ü|%(?![0-9a-fA-F]{2})|%00/.test(target),
    })
    return { name: '', kind: 'get', label: `${method} ${target.slice(0, 120)}${existing ? ' (exists)' : ''}`, ids: [id], steps }
  }],
  [8, function methodPath (ctx) {
    const id = ctx.id
    const method = ctx.rng.pick(['PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT', 'FOO', 'PROPFIND', 'MKCOL',
      'M-SEARCH', 'get', 'post', 'POST', 'GET', 'POST ', 'G\u00c9T', 'A'.repeat(100)])
    const path = ctx.rng.pick(['/', '/payments/', '/payments', `/payments/${id}/transitions`, `/internal/payments/${id}`,
      `/internal/payments/${id}/transitions`, '/admin/reload-keys', '/metrics', '/readyz', '/healthz', `/webhooks/psp/sandbox/${id}`,
      `/webhooks/psp/unknown/${id}`, `/webhooks/psp/sandbox/${id}/extra`, '/webhooks/psp/', '/.env', '/%00', '*',
      `/PAYMENTS/${id}`, `/payments/${id}/../../admin/reload-keys`, '/internal/', '/payments?x=1'])
    if ((method.trim() === 'GET' && /^\/payments\/[A-Za-z0-9_-]+$/.test(path)) || (method.trim() === 'POST' && path.startsWith('/payments'))) {
      return methodPath({ rng: ctx.rng, id })
    }
    const headers: HeaderList = [['Authorization', `Bearer ${demoKey}`], ['X-PAYMENT-CHECKOUT-ID', id]]
    if (ctx.rng.chance(0.3)) headers.push(['X-Ringpay-Internal-Token', stack.internalTokens.processor])
    const withBody = ctx.rng.chance(0.5)
    if (withBody) headers.push(['Content-Type', 'application/json'])
    const body = withBody ? Buffer.from(ctx.rng.pick([objectText(validBodyFor(ctx.rng)), '{"to":"succeeded","expected_version":1,"actor":"fuzz"}']), 'utf8') : undefined
    return {
      name: '', kind: 'method-path', label: `${method} ${path}`, ids: [id],
      steps: [{ route: 'other', request: { method, target: path, headers, body }, httpLevel: true, protocolStatuses: [] }],
    }
  }],
  [5, function webhook (ctx) {
    const id = ctx.id
    const steps: Step[] = []
    const exists = ctx.rng.chance(0.5)
    const fields = validBodyFor(ctx.rng)
    if (exists) steps.push(validCreateStep(ctx, fields))
    const type = ctx.rng.pick(['charge.succeeded', 'charge.failed', 'charge.pending', 'charge.requires_action', 'constructor',
      'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'charge.refunded', '', 'charge.succeeded '])
    const amountRaw = ctx.rng.pick(['1999', '1', '-1', '1e308', '"1999"', '19.99', 'null'])
    const event = objectText([
      ['id', JSON.stringify(ctx.rng.pick([`evt_${ctx.rng.letters(12)}`, '', 'evt bad', 'e'.repeat(129)]))],
      ['object', '"event"'], ['type', JSON.stringify(type)], ['created', String(Math.floor(Date.now() / 1000))],
      ['data', objectText([['object', objectText([
        ['id', '"ch_fuzz"'], ['object', '"charge"'], ['status', '"succeeded"'],
        ['reference', JSON.stringify(ctx.rng.chance(0.9) ? id : `${id}x`)], ['merchant_id', '"merchant_demo"'], ['amount', amountRaw],
        ['currency', ctx.rng.pick(['"EUR"', '"eur"', '"XYZ"', '5'])], ['payment_method', '"pm_card_visa"'],
      ])]])],
    ])
    const signed = ctx.rng.chance(0.8)
    const provider = ctx.rng.pick(['sandbox', 'sandbox', 'sandbox', 'SANDBOX', 'stripe', '..'])
    const signature = signed ? signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), event)
      : ctx.rng.pick(['', 't=0,v1=00', `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`, 'garbage', 't=1,t=2'])
    steps.push({
      route: 'webhook',
      request: {
        method: 'POST', target: `/webhooks/psp/${provider}/${id}`,
        headers: [['Content-Type', 'application/json'], ['Ringpay-Signature', signature]], body: Buffer.from(event, 'utf8'),
      },
    })
    return { name: '', kind: 'webhook', label: `${signed ? 'signed' : 'unsigned'} ${provider} type ${JSON.stringify(type)} amount ${amountRaw}${exists ? ' (exists)' : ''}`, ids: [id], steps }
  }],
  [6, function sequence (ctx) {
    const fields = validBodyFor(ctx.rng)
    const first = validCreateStep(ctx, fields)
    const same = (): Step => validCreateStep(ctx, fields, [200, 409], undefined)
    const what = ctx.rng.pick(['replay', 'reuse', 'other merchant', 'other merchant reads', 'owner reads', 'burst'])
    switch (what) {
      case 'replay': return seq(ctx, what, [first, { ...same(), status: 200 }])
      case 'reuse': {
        const changed = fields.map(([k, v]): Field => k === 'amount' ? [k, v === '1' ? '2' : '1'] : [k, v])
        return seq(ctx, what, [first, { ...validCreateStep(ctx, changed), status: 409, code: 'idempotency_key_reuse' }])
      }
      case 'other merchant': {
        const step = validCreateStep(ctx, fields)
        step.request.headers = step.request.headers.map(([n, v]) => n === 'Authorization' ? [n, `Bearer ${otherKey}`] : [n, v])
        // Checkout ids are per merchant: the other merchant's create of the id is its own payment.
        return seq(ctx, what, [first, { ...step, merchants: new Set(['merchant_other']), status: 202 }])
      }
      case 'other merchant reads':
      case 'owner reads': {
        const key = what === 'owner reads' ? demoKey : otherKey
        return seq(ctx, what, [first, {
          route: 'get', request: { method: 'GET', target: `/payments/${ctx.id}`, headers: [['Authorization', `Bearer ${key}`]] },
          merchants: new Set([merchantByKey.get(key)!]), status: what === 'owner reads' ? 200 : 404,
        }])
      }
      default: {
        const burst = Array.from({ length: 4 }, () => ({ ...same(), status: [202, 200, 409] }))
        return { ...seq(ctx, what, burst), concurrent: true }
      }
    }
  }],
]

function validCreateStep (ctx: Ctx, fields: Field[], status: number | number[] = 202, code?: string): Step {
  const auth = [`Bearer ${demoKey}`]
  return {
    route: 'create',
    request: createRequest({ idHeaders: [ctx.id], auth, body: Buffer.from(objectText(fields), 'utf8') }),
    merchants: merchantsOf(auth), status, code,
  }
}

function seq (ctx: Ctx, label: string, steps: Step[]): FuzzCase {
  return { name: '', kind: 'sequence', label, ids: [ctx.id], steps }
}

function generateCase (index: number): FuzzCase {
  const rng = Prng.forCase(seed, index)
  const ctx = { rng, id: `fz-${runTag}-${rng.letters(8)}` }
  const generate = rng.weighted(generators)
  const c = generate(ctx)
  c.name = String(index)
  return c
}

/** Slow clients: byte by byte with pauses (must still work), and clients that stall or vanish. */
function slowCases (): FuzzCase[] {
  const rng = Prng.forCase(seed, -1)
  const make = (label: string, slow: SlowSend, stalled: boolean, mutate?: (r: RawRequest) => void): FuzzCase => {
    const id = `fz-${runTag}-${rng.letters(8)}`
    const step = validCreateStep({ rng, id }, [['amount', '1999'], ['currency', '"EUR"'], ['payment_method', `"${knownPaymentMethods[0]}"`]])
    step.slow = slow
    if (stalled) {
      step.stalled = true
      step.status = undefined
    }
    mutate?.(step.request)
    return { name: '', kind: 'slow', label, ids: [id], steps: [step] }
  }
  const cases = [
    make('headers and body byte by byte', { chunkBytes: 1, pauseMs: 5 }, false),
    make('3 bytes every 30 ms', { chunkBytes: 3, pauseMs: 30 }, false),
    make('stops mid-body', { chunkBytes: 64, pauseMs: 10, stopAfterBytes: -1 }, true),
    make('stops mid-headers', { chunkBytes: 16, pauseMs: 10, stopAfterBytes: 40 }, true),
    make('declares more body than it sends', { chunkBytes: 4096, pauseMs: 10 }, true, (r) => {
      r.headers.push(['Content-Length', String((r.body?.length ?? 0) + 100)])
    }),
  ]
  cases.forEach((c, i) => { c.name = `slow:${i}` })
  return cases
}

/**
 * Bugs this fuzzer found, replayed on every run (fixed in payment-svc/):
 *  - invalid UTF-8 in a body was decoded to U+FFFD and accepted: stored ≠ sent (http-io.ts);
 *  - an unpaired surrogate (`"\\ud800"`) in a text field was accepted and stored as U+FFFD (create-request.ts);
 *  - a metadata key `__proto__` was accepted and silently dropped (create-request.ts);
 *  - a signed webhook of type `constructor`/`toString`/… passed the type check (`in` sees the
 *    prototype) and was recorded as an event (webhooks/sandbox.ts).
 */
function regressionCases (): FuzzCase[] {
  const rng = Prng.forCase(seed, -2)
  const newCtx = (): Ctx => ({ rng, id: `fz-${runTag}-${rng.letters(8)}` })
  const base: Field[] = [['amount', '1999'], ['currency', '"EUR"'], ['payment_method', '"pm_card_visa"']]
  const rejected = (ctx: Ctx, body: Buffer | string, label: string, code: string): FuzzCase =>
    simpleCreate(ctx, body, label, 'regression', { status: 400, code })
  const cases: FuzzCase[] = [
    rejected(newCtx(), Buffer.concat([Buffer.from(`${objectText(base).slice(0, -1)},"description":"caf`), Buffer.from([0xe9]), Buffer.from('"}')]),
      'latin1 é (invalid UTF-8) in description', 'invalid_json'),
    rejected(newCtx(), Buffer.concat([Buffer.from(`${objectText(base).slice(0, -1)},"customer_ref":"`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
      'CESU-8 surrogate bytes in customer_ref', 'invalid_json'),
    rejected(newCtx(), objectText([...base, ['description', '"lone \\ud800 high"']]), 'unpaired high surrogate in description', 'validation_failed'),
    rejected(newCtx(), objectText([...base, ['customer_ref', '"\\udc00"']]), 'unpaired low surrogate in customer_ref', 'validation_failed'),
    rejected(newCtx(), objectText([...base, ['metadata', '{"k":"\\ud83d"}']]), 'cut emoji in a metadata value', 'validation_failed'),
    rejected(newCtx(), objectText([...base, ['metadata', '{"__proto__":"x","a":"b"}']]), 'metadata key __proto__', 'validation_failed'),
  ]
  for (const type of ['constructor', 'toString', '__proto__']) {
    const ctx = newCtx()
    const event = objectText([['id', JSON.stringify(`evt_${rng.letters(12)}`)], ['object', '"event"'], ['type', JSON.stringify(type)],
      ['created', String(Math.floor(Date.now() / 1000))], ['data', objectText([['object', objectText([['id', '"ch_fuzz"'],
        ['object', '"charge"'], ['status', '"succeeded"'], ['reference', JSON.stringify(ctx.id)], ['merchant_id', '"merchant_demo"'], ['amount', '1999'],
        ['currency', '"EUR"']])]])]])
    cases.push({
      name: '', kind: 'regression', label: `signed webhook of type ${type}`, ids: [ctx.id],
      steps: [validCreateStep(ctx, base), {
        route: 'webhook', status: 400, code: 'validation_failed',
        request: {
          method: 'POST', target: `/webhooks/psp/sandbox/${ctx.id}`, body: Buffer.from(event),
          headers: [['Content-Type', 'application/json'], ['Ringpay-Signature', signWebhook(stack.psp.webhookSecret, Math.floor(Date.now() / 1000), event)]],
        },
      }],
    })
  }
  cases.forEach((c, i) => { c.name = `reg:${i}` })
  return cases
}

/**
 * Findings outside payment-svc/, reported as TODO (still run and printed) until fixed where they
 * live. None open. (Fixed: nginx hashed a checkout-id header with a leading/trailing TAB byte for
 * byte while Node's parser trimmed it; scripts/stack/nginx.ts now refuses malformed ids with 400.)
 */
const knownIssues: ReadonlyArray<{ matches: (c: FuzzCase) => boolean, todo: string }> = []

// ---------------------------------------------------------------------------------------------
// Checks.

/** The sandbox PSP's event types (sandbox-psp/README.md). */
const webhookTypes = new Set(['charge.succeeded', 'charge.failed', 'charge.pending', 'charge.requires_action'])
const statuses = new Set(['pending', 'processing', 'succeeded', 'failed', 'requires_action', 'canceled'])
const controlChars = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** What the README admits for a create body; an accepted request must pass all of it. */
function specProblems (body: unknown): string[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return ['not an object']
  const b = body as Record<string, unknown>
  const out: string[] = []
  const allowed = new Set(['amount', 'currency', 'payment_method', 'description', 'customer_ref', 'metadata'])
  for (const key of Object.keys(b)) if (!allowed.has(key)) out.push(`unknown field ${key}`)
  if (typeof b.amount !== 'number' || !Number.isSafeInteger(b.amount) || b.amount < 1 || b.amount > 1e12) out.push('amount')
  if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency)) out.push('currency')
  if (typeof b.payment_method !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(b.payment_method)) out.push('payment_method')
  const text = (name: string, value: unknown, lengthMax: number): void => {
    if (value === undefined) return
    if (typeof value !== 'string' || value.length > lengthMax || controlChars.test(value) || loneSurrogate.test(value)) out.push(name)
  }
  text('description', b.description, 500)
  text('customer_ref', b.customer_ref, 128)
  if (b.metadata !== undefined) {
    const m = b.metadata
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      out.push('metadata')
    } else {
      const entries = Object.entries(m)
      if (entries.length > 20) out.push('metadata keys')
      for (const [key, value] of entries) {
        if (!/^[A-Za-z0-9_.-]{1,40}$/.test(key)) out.push(`metadata key ${key}`)
        text(`metadata.${key}`, value, 500)
      }
    }
  }
  return out
}

/** The request as the server must have understood it: strict UTF-8, then JSON. */
function sentBody (bytes: Buffer | undefined): { value: unknown } | { error: string } {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes ?? Buffer.alloc(0))
  } catch {
    return { error: 'body is not valid UTF-8' }
  }
  try {
    return { value: JSON.parse(text) }
  } catch {
    return { error: 'body is not JSON' }
  }
}

function expectedPayment (body: Record<string, unknown>, merchant: string, id: string): Record<string, unknown> {
  return {
    checkout_id: id,
    merchant_id: merchant,
    amount: body.amount,
    currency: body.currency,
    payment_method: body.payment_method,
    description: body.description ?? '',
    customer_ref: body.customer_ref ?? '',
    metadata: body.metadata ?? {},
  }
}

const comparedFields = ['checkout_id', 'merchant_id', 'amount', 'currency', 'payment_method', 'description', 'customer_ref', 'metadata']
const pick = (o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> =>
  Object.fromEntries(keys.map((k) => [k, o[k]]))

function parseJsonBody (bytes: Buffer): any {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
}

interface CaseResult { statuses: number[], problems: string[] }

/** Runs one case and returns every invariant it broke. */
async function runCase (c: FuzzCase): Promise<CaseResult> {
  const problemsFound: string[] = []
  const seen: number[] = []
  /**
   * What each accepted create stored (the first 202 of its payment). A payment is its merchant's
   * checkout id (issue #17 part 5): each entry names the merchants it may belong to (one, unless
   * the request was ambiguous, e.g. two Authorization headers) and is keyed by them and the id.
   */
  const accepted = new Map<string, { merchants: ReadonlySet<string>, want: Record<string, unknown> }>()
  const acceptedKey = (merchants: Iterable<string>, id: string): string => `${[...merchants].sort().join('|')}/${id}`
  const acceptedFor = (merchants: ReadonlySet<string> | undefined, id: string): Record<string, unknown> | undefined => {
    for (const entry of accepted.values()) {
      if (entry.want.checkout_id === id && [...entry.merchants].some((m) => merchants?.has(m) === true)) return entry.want
    }
    return undefined
  }
  const fail = (step: Step, bytes: Buffer, outcome: RawOutcome | undefined, why: string): void => {
    const res = outcome?.response
    problemsFound.push(`${why}\n    request: ${describeRequest(bytes)}\n    answer: ${res === undefined
      ? `none (timed out: ${outcome?.timedOut}, error: ${outcome?.error}, raw: ${JSON.stringify(outcome?.raw.subarray(0, 200).toString('latin1'))})`
      : `${res.status} ${res.headers['content-type'] ?? ''} ${JSON.stringify(res.body.subarray(0, 400).toString('utf8'))}`}`)
  }

  const runStep = async (step: Step): Promise<void> => {
    const bytes = encodeRequest(step.request)
    if (step.slow?.stopAfterBytes === -1) step.slow.stopAfterBytes = bytes.length - 10
    const timeoutMs = step.stalled === true ? nginxClientTimeoutMs + slowCloseMarginMs : requestTimeoutMs
    const outcome = await sendRaw(host, port, step.request.method.trim(), bytes, timeoutMs, step.slow, publicUrl.protocol === 'https:')
    const res = outcome.response
    if (res === undefined) {
      // A stalled client may be cut off without an answer; anyone else must get one.
      if (step.stalled === true && !outcome.timedOut) return
      fail(step, bytes, outcome, outcome.timedOut ? `no answer within ${timeoutMs} ms` : 'connection closed without an answer')
      return
    }
    seen.push(res.status)
    if (res.status >= 500 && !(step.protocolStatuses ?? []).includes(res.status)) {
      fail(step, bytes, outcome, `server error ${res.status}`)
      return
    }
    const expected = step.status
    if (expected !== undefined && !(typeof expected === 'number' ? [expected] : expected).includes(res.status)) {
      fail(step, bytes, outcome, `expected status ${JSON.stringify(expected)}`)
    }
    const type = res.headers['content-type'] ?? ''
    const json = step.request.method === 'HEAD' ? undefined : parseJsonBody(res.body)
    if (res.status >= 400) {
      if (type.startsWith('application/problem+json')) {
        if (step.request.method !== 'HEAD') {
          const code = json?.code as string | undefined
          const spec = code !== undefined ? (problems as Record<string, { status: number }>)[code] : undefined
          if (spec === undefined) fail(step, bytes, outcome, `problem code ${JSON.stringify(code)} is not in the registry`)
          else if (spec.status !== res.status || json.status !== res.status) fail(step, bytes, outcome, `problem ${code} answered with status ${res.status}`)
          if (step.code !== undefined && code !== step.code) fail(step, bytes, outcome, `expected code ${step.code}`)
        }
      } else if (step.httpLevel !== true && !(step.stalled === true && res.status === 408)) {
        fail(step, bytes, outcome, 'error answer is not application/problem+json')
      }
      return
    }
    if (step.stalled === true) return fail(step, bytes, outcome, 'a request that never arrived whole was answered with success')
    // 1xx/2xx/3xx: only a create or a read of one's own payment may succeed.
    if (step.route === 'create' && (res.status === 202 || res.status === 200)) {
      const sent = sentBody(step.request.body)
      if ('error' in sent) return fail(step, bytes, outcome, `accepted, but the ${sent.error}`)
      const problemsOfBody = specProblems(sent.value)
      if (problemsOfBody.length > 0) return fail(step, bytes, outcome, `accepted an invalid body: ${problemsOfBody.join(', ')}`)
      const id = json?.checkout_id
      if (typeof id !== 'string' || !c.ids.includes(id)) return fail(step, bytes, outcome, `accepted under an unexpected checkout id ${JSON.stringify(id)}`)
      if (json.merchant_id !== undefined || json.node_id !== undefined) fail(step, bytes, outcome, 'public answer carries internal fields')
      const merchants = [...(step.merchants ?? [])]
      const merchant = merchants[0]
      if (merchant === undefined) return fail(step, bytes, outcome, 'accepted without a valid API key')
      const want = expectedPayment(sent.value as Record<string, unknown>, merchant, id)
      const gotPublic = pick(json, comparedFields.filter((f) => f !== 'merchant_id'))
      if (res.status === 202) {
        if (acceptedFor(step.merchants, id) !== undefined) fail(step, bytes, outcome, 'a second 202 for the same payment (merchant and checkout id)')
        if (!isDeepStrictEqual(gotPublic, pick(want, comparedFields.filter((f) => f !== 'merchant_id')))) {
          fail(step, bytes, outcome, `answer differs from what was sent: ${JSON.stringify(gotPublic)}`)
        }
        accepted.set(acceptedKey(merchants, id), { merchants: new Set(merchants), want: merchants.length === 1 ? want : { ...want, merchant_id: undefined } })
      } else {
        if (res.headers['idempotent-replayed'] !== 'true') fail(step, bytes, outcome, '200 without Idempotent-Replayed')
      }
      return
    }
    if (step.route === 'get' && res.status === 200) {
      if (json?.merchant_id !== undefined || json?.node_id !== undefined) return fail(step, bytes, outcome, 'public read exposes the internal view')
      // Only the reader's own payment of the id can be found: another merchant's is another payment.
      const stored = acceptedFor(step.merchants, json?.checkout_id)
      if (stored === undefined) return fail(step, bytes, outcome, 'read a payment this case did not create for this merchant (another merchant\'s?)')
      if (stored.merchant_id !== undefined && !step.merchants?.has(stored.merchant_id as string)) return fail(step, bytes, outcome, 'read another merchant\'s payment')
      const publicFields = comparedFields.filter((f) => f !== 'merchant_id')
      if (!isDeepStrictEqual(pick(json, publicFields), pick(stored, publicFields))) fail(step, bytes, outcome, 'read differs from what was accepted')
      return
    }
    if (step.route === 'webhook' && res.status === 200) {
      if (accepted.size === 0) fail(step, bytes, outcome, 'webhook accepted for a payment that does not exist')
      const type = (sentBody(step.request.body) as { value?: { type?: unknown } }).value?.type
      if (!webhookTypes.has(type as string)) fail(step, bytes, outcome, `webhook of unknown type ${JSON.stringify(type)} accepted`)
      return
    }
    fail(step, bytes, outcome, `unexpected success ${res.status} for ${step.route}`)
  }

  if (c.concurrent === true) await Promise.all(c.steps.map(runStep))
  else for (const step of c.steps) await runStep(step)

  // Storage, per merchant (the same checkout id of two merchants is two payments): a rejected
  // create left nothing; an accepted one holds exactly what was sent, under one merchant it may
  // belong to.
  for (const id of c.ids) {
    const storedBy = new Map<string, ApiResponse>()
    for (const merchant of merchantByKey.values()) storedBy.set(merchant, await getInternal(stack.internalUrl, id, undefined, merchant))
    const claimed = new Set<string>()
    for (const { merchants, want } of accepted.values()) {
      if (want.checkout_id !== id) continue
      const holders = [...merchants].filter((m) => storedBy.get(m)?.status === 200)
      if (holders.length !== 1) {
        problemsFound.push(`accepted checkout id ${id} (merchants ${[...merchants].join(', ')}) reads 200 for ${holders.length} of them`)
        continue
      }
      claimed.add(holders[0]!)
    }
    for (const [merchant, res] of storedBy) {
      if (!claimed.has(merchant) && res.status !== 404) {
        problemsFound.push(`checkout id ${id} was not accepted for ${merchant} but reads ${res.status}: ${res.text.slice(0, 400)}`)
      }
    }
    for (const merchant of claimed) {
      const stored = storedBy.get(merchant)!
      const want = acceptedFor(new Set([merchant]), id)!
      const got = pick(stored.body, comparedFields)
      const wanted = want.merchant_id === undefined ? { ...want, merchant_id: got.merchant_id } : want
      if (!isDeepStrictEqual(got, wanted)) {
        problemsFound.push(`stored ${id} differs from what was sent:\n    sent:   ${JSON.stringify(wanted)}\n    stored: ${JSON.stringify(got)}`)
      }
      if (!statuses.has(stored.body.status)) problemsFound.push(`stored ${id} has status ${JSON.stringify(stored.body.status)}`)
    }
  }
  if (c.concurrent === true && seen.filter((s) => s === 202).length !== 1) {
    problemsFound.push(`concurrent identical creates: expected exactly one 202, got ${JSON.stringify(seen)}`)
  }
  return { statuses: seen, problems: problemsFound }
}

async function pidsOfNodes (): Promise<Record<string, number | null>> {
  const { services } = await control<{ services: Array<{ name: string, pid: number | null, running: boolean }> }>('/services', 'GET')
  const nodeIds = new Set(stack.nodes.map((n) => n.id))
  return Object.fromEntries(services.filter((s) => nodeIds.has(s.name)).map((s) => [s.name, s.running ? s.pid : null]))
}

async function readyzStatus (adminPort: number): Promise<number> {
  const until = Date.now() + readyDeadlineMs
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(readyDeadlineMs) })
      await res.arrayBuffer()
      return res.status
    } catch (error) {
      if (Date.now() > until) throw error
    }
  }
}

// ---------------------------------------------------------------------------------------------

t.test('fuzz the public API', async (t) => {
  t.comment(`fuzz seed ${seed} (replay: RINGPAY_FUZZ_SEED=${seed}), ${caseCount} cases, run tag ${runTag}`)
  const pidsBefore = await pidsOfNodes()
  t.ok(Object.values(pidsBefore).every((pid) => pid !== null), `every node runs: ${JSON.stringify(pidsBefore)}`)

  const slow = slowCases()
  const fixed = [...slow, ...regressionCases()]
  let cases: FuzzCase[]
  if (onlyCase === undefined) {
    cases = [...fixed, ...Array.from({ length: caseCount }, (_, i) => generateCase(i))]
  } else if (/^(slow|reg):/.test(onlyCase)) {
    cases = fixed.filter((c) => c.name === onlyCase)
  } else {
    cases = [generateCase(Number(onlyCase))]
  }

  const startedAt = performance.now()
  const failures: Array<{ c: FuzzCase, problems: string[] }> = []
  const byKind = new Map<string, number>()
  const byStatus = new Map<number, number>()
  let next = 0
  const worker = async (): Promise<void> => {
    for (let c = cases[next++]; c !== undefined; c = cases[next++]) {
      byKind.set(c.kind, (byKind.get(c.kind) ?? 0) + 1)
      let result: CaseResult
      try {
        result = await runCase(c)
      } catch (error) {
        result = { statuses: [], problems: [`the case threw: ${(error as Error).stack ?? String(error)}`] }
      }
      for (const s of result.statuses) byStatus.set(s, (byStatus.get(s) ?? 0) + 1)
      if (result.problems.length > 0) failures.push({ c, problems: result.problems })
    }
  }
  // Slow cases take ~nginx's client timeout: they start first and run alongside the rest.
  await Promise.all(Array.from({ length: concurrentCases + slow.length }, worker))
  const elapsedS = (performance.now() - startedAt) / 1000

  t.comment(`${cases.length} cases in ${elapsedS.toFixed(1)} s; by kind ${JSON.stringify(Object.fromEntries(byKind))}`)
  t.comment(`answers by status ${JSON.stringify(Object.fromEntries([...byStatus].sort(([a], [b]) => a - b)))}`)
  const known = failures.filter(({ c }) => knownIssues.some((k) => k.matches(c)))
  const unknown = failures.filter((f) => !known.includes(f))
  for (const { c, problems: found } of [...unknown, ...known].slice(0, failuresPrintedMax)) {
    const todo = knownIssues.find((k) => k.matches(c))?.todo
    t.fail(`case ${c.name} [${c.kind}: ${c.label}] — replay: RINGPAY_FUZZ_SEED=${seed} RINGPAY_FUZZ_CASE=${c.name}\n  ${found.join('\n  ')}`,
      todo === undefined ? {} : { todo })
  }
  t.equal(unknown.length, 0, `no case broke an invariant (seed ${seed}; ${known.length} known issues reported as TODO)`)

  for (const node of stack.nodes) t.equal(await readyzStatus(node.adminPort), 200, `node ${node.id} is ready`)
  t.same(await pidsOfNodes(), pidsBefore, 'every node is still the same process')
})
