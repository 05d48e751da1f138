// Generators and a raw HTTP/1.1 client for the public-API fuzzer (test/api/fuzz.test.ts).
// Every case is built from its own PRNG, seeded from (run seed, case index), so one case can be
// replayed alone: RINGPAY_FUZZ_SEED=<seed> RINGPAY_FUZZ_CASE=<index>.

import { isUtf8 } from 'node:buffer'
import { connect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

// ---------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded through splitmix32. Small, fast, and the same sequence on every platform.

function splitmix32 (state: number): () => number {
  let s = state >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

export class Prng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor (seed: number) {
    const mix = splitmix32(seed)
    this.#a = mix()
    this.#b = mix()
    this.#c = mix()
    this.#d = mix()
  }

  /** The PRNG of case `index` in a run with `seed`: independent of every other case. */
  static forCase (seed: number, index: number): Prng {
    return new Prng((seed ^ Math.imul(index + 1, 0x27d4eb2d)) >>> 0)
  }

  /** Uniform 32-bit unsigned integer. */
  next (): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** Integer in [min, max]. */
  int (min: number, max: number): number {
    return min + Math.floor((this.next() / 0x1_0000_0000) * (max - min + 1))
  }

  chance (p: number): boolean {
    return this.next() / 0x1_0000_0000 < p
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.int(0, items.length - 1)] as T
  }

  /** Picks by weight: [[weight, value], …]. */
  weighted<T> (items: ReadonlyArray<readonly [number, T]>): T {
    const total = items.reduce((sum, [w]) => sum + w, 0)
    let r = this.int(0, total - 1)
    for (const [w, value] of items) {
      if (r < w) return value
      r -= w
    }
    return items[items.length - 1]![1]
  }

  letters (length: number): string {
    let s = ''
    for (let i = 0; i < length; i++) s += String.fromCharCode(97 + this.int(0, 25))
    return s
  }

  bytes (length: number): Buffer {
    const out = Buffer.alloc(length)
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255)
    return out
  }

  shuffle<T> (items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i)
      const tmp = items[i] as T
      items[i] = items[j] as T
      items[j] = tmp
    }
    return items
  }
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: sends exactly the bytes a case describes (undici and fetch refuse or
// normalise most of what a fuzzer needs: odd methods, non-ASCII headers, wrong framing).

export type HeaderList = Array<[name: string, value: string | Buffer]>

export interface RawRequest {
  method: string
  /** The request-target exactly as sent (UTF-8 encoded on the wire). */
  target: string
  /** Default `HTTP/1.1`. */
  version?: string
  /** Sent in order; `Host` and `Connection: close` are added unless present (see `noHost`). */
  headers: HeaderList
  body?: Buffer
  /** Body framing. Default: a correct Content-Length when there is a body. */
  framing?: 'content-length' | 'chunked' | 'none'
  noHost?: boolean
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
}

export interface RawOutcome {
  response: RawResponse | undefined
  /** Bytes received that are not a parseable response (nothing, or garbage). */
  raw: Buffer
  /** The client gave up waiting. */
  timedOut: boolean
  /** A socket error (e.g. ECONNRESET after nginx answered early), if any. */
  error: string | undefined
  elapsedMs: number
}

/** How a slow client sends: `chunkBytes` at a time with `pauseMs` between, and maybe stops early. */
export interface SlowSend {
  chunkBytes: number
  pauseMs: number
  /** Stop sending after this many bytes and wait (the server must time us out). */
  stopAfterBytes?: number
}

export function encodeRequest (req: RawRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${req.method} ${req.target} ${req.version ?? 'HTTP/1.1'}\r\n`, 'utf8')]
  const names = new Set(req.headers.map(([name]) => name.toLowerCase()))
  const headers: HeaderList = [...req.headers]
  if (!names.has('host') && req.noHost !== true) headers.unshift(['Host', '127.0.0.1'])
  if (!names.has('connection')) headers.push(['Connection', 'close'])
  const body = req.body
  const framing = req.framing ?? 'content-length'
  if (body !== undefined && framing === 'content-length' && !names.has('content-length')) headers.push(['Content-Length', String(body.length)])
  if (body !== undefined && framing === 'chunked' && !names.has('transfer-encoding')) headers.push(['Transfer-Encoding', 'chunked'])
  for (const [name, value] of headers) {
    parts.push(Buffer.from(`${name}: `, 'utf8'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('\r\n'))
  if (body !== undefined) {
    if (framing === 'chunked') {
      const chunkBytesMax = 4096
      for (let at = 0; at < body.length; at += chunkBytesMax) {
        const chunk = body.subarray(at, at + chunkBytesMax)
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'))
      }
      parts.push(Buffer.from('0\r\n\r\n'))
    } else {
      parts.push(body)
    }
  }
  return Buffer.concat(parts)
}

/** Parses one response from `data`; undefined when it is not (yet) a whole response. */
export function parseResponse (data: Buffer, method: string, complete: boolean): RawResponse | undefined {
  const headEnd = data.indexOf('\r\n\r\n')
  if (headEnd === -1) return undefined
  const lines = data.subarray(0, headEnd).toString('latin1').split('\r\n')
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (statusMatch === null) return undefined
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  const status = Number(statusMatch[1])
  let rest = data.subarray(headEnd + 4)
  // Interim answers (100 Continue) precede the real one.
  if (status >= 100 && status < 200 && status !== 101) return parseResponse(rest, method, complete)
  if (method === 'HEAD' || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const chunks: Buffer[] = []
    for (;;) {
      const lineEnd = rest.indexOf('\r\n')
      if (lineEnd === -1) return undefined
      const size = parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
      if (!Number.isFinite(size)) return undefined
      if (size === 0) return { status, headers, body: Buffer.concat(chunks) }
      if (rest.length < lineEnd + 2 + size + 2) return undefined
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
      rest = rest.subarray(lineEnd + 2 + size + 2)
    }
  }
  const length = headers['content-length']
  if (length !== undefined) {
    const n = Number(length)
    if (rest.length < n) return undefined
    return { status, headers, body: rest.subarray(0, n) }
  }
  return complete ? { status, headers, body: rest } : undefined
}

/**
 * Sends `bytes` to host:port on a fresh connection and reads one response. Resolves (never
 * rejects) once a whole response arrived, the server closed, or `timeoutMs` passed.
 */
export function sendRaw (host: string, port: number, method: string, bytes: Buffer, timeoutMs: number,
  slow?: SlowSend, tls = false): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const startedAt = performance.now()
    const received: Buffer[] = []
    let settled = false
    let error: string | undefined
    // The bytes go over TLS to a TLS listener (the stack's public one): still exactly these bytes.
    const socket = tls ? tlsConnect({ host, port }) : connect({ host, port })
    const timers = new Set<NodeJS.Timeout>()
    const finish = (timedOut: boolean): void => {
      if (settled) return
      settled = true
      for (const timer of timers) clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(received)
      resolve({ response: parseResponse(raw, method, true), raw, timedOut, error, elapsedMs: performance.now() - startedAt })
    }
    timers.add(setTimeout(() => finish(true), timeoutMs))
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk)
      // A whole response is enough: do not wait for the close.
      if (parseResponse(Buffer.concat(received), method, false) !== undefined) finish(false)
    })
    socket.on('end', () => finish(false))
    socket.on('close', () => finish(false))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message
      // Keep what was received; nginx may have answered before resetting.
      finish(false)
    })
    socket.on(tls ? 'secureConnect' : 'connect', () => {
      if (slow === undefined) {
        socket.write(bytes, () => {})
        return
      }
      const stopAt = Math.min(bytes.length, slow.stopAfterBytes ?? bytes.length)
      let at = 0
      const step = (): void => {
        if (settled || socket.destroyed) return
        const end = Math.min(stopAt, at + slow.chunkBytes)
        socket.write(bytes.subarray(at, end), () => {})
        at = end
        if (at < stopAt) {
          const timer = setTimeout(() => { timers.delete(timer); step() }, slow.pauseMs)
          timers.add(timer)
        }
      }
      step()
    })
  })
}

/** A short, printable form of a request for failure messages (enough to rebuild it by hand). */
export function describeRequest (bytes: Buffer, bytesMax = 1500): string {
  const shown = bytes.subarray(0, bytesMax)
  // UTF-8 when the bytes are UTF-8 (readable non-ASCII), else latin1 (one char per byte).
  const text = JSON.stringify(isUtf8(shown) ? shown.toString('utf8') : shown.toString('latin1'))
  return bytes.length > bytesMax ? `${text} … (${bytes.length} bytes in all)` : text
}

// ---------------------------------------------------------------------------------------------
// JSON bodies as ordered fields of raw JSON text, so a case can hold duplicate keys, numbers
// JavaScript cannot represent, and exactly the bytes it wants.

export type Field = [key: string, rawValue: string]

export function objectText (fields: readonly Field[], space = ''): string {
  return `{${space}${fields.map(([key, raw]) => `${JSON.stringify(key)}:${space}${raw}`).join(`,${space}`)}${space}}`
}

const j = (value: unknown): string => JSON.stringify(value)

/** Payment methods the sandbox PSP knows, so accepted fuzz payments do not end in dead letters. */
export const knownPaymentMethods = ['pm_card_visa', 'pm_card_declined'] as const
const validCurrencies = ['EUR', 'USD', 'JPY', 'GBP', 'BHD', 'CHF', 'KWD', 'CLP'] as const
const validTexts = ['', 'Test order', 'Café crème ☕ Zürich', 'ελληνικά · 日本語 · עברית', 'tab\tand\nnewline',
  '😀 emoji', 'a'.repeat(500), '😀'.repeat(250), 'e\u0301 combining', 'zero\u200bwidth'] as const

export function validFields (rng: Prng): Field[] {
  const fields: Field[] = [
    ['amount', j(rng.pick([1, 1999, rng.int(1, 1_000_000), 999_999_999_999, 1_000_000_000_000]))],
    ['currency', j(rng.pick(validCurrencies))],
    ['payment_method', j(rng.pick(knownPaymentMethods))],
  ]
  if (rng.chance(0.5)) fields.push(['description', j(rng.pick(validTexts))])
  if (rng.chance(0.3)) fields.push(['customer_ref', j(rng.pick(['', 'cust_abc', 'c'.repeat(128), 'Ünïcödé ref']))])
  if (rng.chance(0.3)) {
    const count = rng.pick([0, 1, 5, 20])
    const metadata: Record<string, string> = {}
    for (let i = 0; i < count; i++) metadata[`k${rng.letters(rng.int(1, 30))}.${i}`] = rng.pick(validTexts)
    fields.push(['metadata', j(metadata)])
  }
  return rng.shuffle(fields)
}

// Raw JSON values for each field: boundaries, wrong types, things JavaScript parses surprisingly.
const amountPool = ['0', '-1', '-0', '1', '1.0', '1e0', '0.1e1', '1E3', '19.99', '1999', '"1999"', '1e12', '1000000000000',
  '1000000000001', '1e308', '-1e308', '2e308', '-2e308', '9007199254740991', '9007199254740992', '9007199254740993',
  '18446744073709551616', '123456789012345678901234567890', '1e-7', '5e-324', 'null', 'true', 'false', '[]', '[1999]',
  '{}', '"NaN"', 'NaN', 'Infinity', '-Infinity', '"Infinity"', '0x10', '1_000', '"１２３"', '"1e3"', '01', '-', '+1',
  '.5', '5.', '""', '"  1999"', '1999 ', '0.0', '-0.0', '1e1000', '100000000000000000000000000000000000000000000000000']
const currencyPool = ['"eur"', '"Eur"', '"EU"', '"EURO"', '"XYZ"', '"XXX"', '"XTS"', '"XAU"', '"E"', '""', '"   "', '"EUR "',
  '" EUR"', '"EUR\\n"', '"ÉUR"', '"ЕUR"', '"E\\u0301UR"', '"€"', '"EUR\\u0000"', '123', 'null', '["EUR"]', '{"code":"EUR"}',
  'true', '"eur\\ud800"', '"ＥＵＲ"']
const paymentMethodPool = ['""', '" "', '"pm card"', `"${'p'.repeat(129)}"`, '"pm_card_visa\\u0000"', '"pm/../x"',
  '"pm_ünicode"', '123', 'null', 'true', '{}', '["pm_card_visa"]', '"<script>alert(1)</script>"',
  '"pm_card_visa\'; DROP TABLE payments;--"', '"pm_card_visa\\n"', '"pm\\ud800"', '"4242424242424242"']
const textPool = ['""', `"${'x'.repeat(500)}"`, `"${'x'.repeat(501)}"`, `"${'x'.repeat(128)}"`, `"${'x'.repeat(129)}"`,
  j('😀'.repeat(250)), j('😀'.repeat(251)), '"a\\u0000b"', '"bell\\u0007"', '"del\\u007f"', '"c1\\u0085"',
  '"\\t\\n ok"', '"cr\\r\\n"', '"\\u202egnp.exe"', '"lone \\ud800 high"', '"lone \\udc00 low"', '"cut \\ud83d"',
  '"\\udbff\\udfff max"', '"\\uffff\\ufffe nonchar"', '5', 'null', '{}', '[]', 'true', '"Ω≈ç√∫˜µ≤≥÷"', '"%s%n%x"',
  '"\\\\\\\\"', '"\\"quoted\\""', j('\u2028\u2029'), '"ref 4242424242424242"', '"ref 4242 4242 4242 4242"']
const metadataKeyPool = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '', 'a b', 'ünï', 'a.b',
  'k'.repeat(40), 'k'.repeat(41), '-', '.', '..', 'k\u0000', 'k\ud800', '0', '__defineGetter__', 'prototype']

function metadataRaw (rng: Prng): string {
  switch (rng.int(0, 7)) {
    case 0: return rng.pick(['null', '[]', '"str"', '5', 'true', '[["a","b"]]'])
    case 1: return objectText(Array.from({ length: rng.pick([20, 21, 100]) }, (_, i): Field => [`k${i}`, '"v"']))
    case 2: return objectText([[rng.pick(metadataKeyPool), rng.pick(['"v"', ...textPool])]])
    case 3: return objectText([['a', '"1"'], ['a', '"2"']])
    case 4: return objectText([['nested', objectText([['a', '"b"']])]])
    case 5: return objectText([[rng.pick(metadataKeyPool), '"v"'], [rng.pick(metadataKeyPool), '"w"']])
    case 6: return objectText([['k', rng.pick(textPool)]])
    default: return '{}'
  }
}

const unknownFieldNames = ['merchant_id', 'status', 'checkout_id', 'id', 'version', 'amount_decimal', '', 'AMOUNT', ' amount',
  'amount ', '__proto__', 'constructor', 'currency_exponent', 'ünknown', 'x'.repeat(300)]

/** One mutation of a field list (in place). Returns a label for the failure message. */
export function mutateFields (rng: Prng, fields: Field[]): string {
  const replace = (key: string, raw: string): string => {
    const at = fields.findIndex(([k]) => k === key)
    if (at === -1) fields.push([key, raw])
    else fields[at] = [key, raw]
    return `${key}=${raw.length > 60 ? `${raw.slice(0, 60)}…` : raw}`
  }
  switch (rng.int(0, 10)) {
    case 0: {
      const at = rng.int(0, fields.length - 1)
      const [key] = fields.splice(at, 1)[0] ?? ['?']
      return `drop ${key}`
    }
    case 1: {
      const key = rng.pick(unknownFieldNames)
      fields.splice(rng.int(0, fields.length), 0, [key, rng.pick(['1', '"x"', 'null', '{}', '"merchant_other"'])])
      return `unknown ${JSON.stringify(key)}`
    }
    case 2: {
      const [key] = rng.pick(fields) ?? ['amount']
      const raw = key === 'amount' ? rng.pick(amountPool) : rng.pick([...currencyPool, ...textPool])
      fields.splice(rng.int(0, fields.length), 0, [key, raw])
      return `duplicate ${key}=${raw.slice(0, 60)}`
    }
    case 3: case 4: return replace('amount', rng.pick(amountPool))
    case 5: return replace('currency', rng.pick(currencyPool))
    case 6: return replace('payment_method', rng.pick(paymentMethodPool))
    case 7: return replace('description', rng.pick(textPool))
    case 8: return replace('customer_ref', rng.pick(textPool))
    default: return replace('metadata', metadataRaw(rng))
  }
}

/** Whole-body oddities: not an object, broken JSON, JSON with trailing garbage or whitespace. */
export function oddBodyText (rng: Prng, valid: string): { label: string, text: string } {
  const options: Array<[string, string]> = [
    ['empty', ''], ['null', 'null'], ['array', '[]'], ['string', '"hello"'], ['number', '1999'], ['true', 'true'],
    ['truncated', valid.slice(0, rng.int(1, valid.length - 1))], ['trailing comma', `${valid.slice(0, -1)},}`],
    ['trailing garbage', `${valid} x`], ['two objects', `${valid}${valid}`], ['single quotes', valid.replace(/"/g, '\'')],
    ['comment', `/* c */${valid}`], ['whitespace around', ` \n\t${valid}\r\n `], ['undefined', 'undefined'],
    ['NUL', '\u0000'], ['unicode whitespace', `\u00a0${valid}`], ['wrapped', `[${valid}]`], ['nested payment', `{"payment":${valid}}`],
  ]
  const [label, text] = rng.pick(options)
  return { label, text }
}

/** Nested JSON `depth` deep, as a whole body or inside a field. */
export function deepJson (rng: Prng, depth: number, valid: Field[]): { label: string, text: string } {
  const form = rng.int(0, 4)
  const arrays = (d: number, inner = ''): string => '['.repeat(d) + inner + ']'.repeat(d)
  const objects = (d: number, inner = '1'): string => '{"a":'.repeat(d) + inner + '}'.repeat(d)
  switch (form) {
    case 0: return { label: `arrays ${depth}`, text: arrays(depth) }
    case 1: return { label: `objects ${depth}`, text: objects(depth) }
    case 2: return { label: `unclosed arrays ${depth}`, text: '['.repeat(depth) }
    case 3: return { label: `metadata value ${depth}`, text: objectText([...valid.filter(([k]) => k !== 'metadata'), ['metadata', objectText([['k', arrays(depth, '"v"')]])]]) }
    default: return { label: `description ${depth}`, text: objectText([...valid.filter(([k]) => k !== 'description'), ['description', objects(depth)]]) }
  }
}

// ---------------------------------------------------------------------------------------------
// Byte-level encodings of a body.

const invalidUtf8Sequences: ReadonlyArray<[string, number[]]> = [
  ['lone continuation', [0x80]], ['bad 2-byte', [0xc3, 0x28]], ['overlong slash', [0xc0, 0xaf]],
  ['CESU surrogate', [0xed, 0xa0, 0x80]], ['0xFF', [0xff]], ['0xFE 0xFF', [0xfe, 0xff]],
  ['truncated 3-byte', [0xe2, 0x82]], ['5-byte', [0xf8, 0xa1, 0xa1, 0xa1, 0xa1]], ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['latin1 é', [0xe9]],
]

/** `text` (a JSON body holding `"description":"…"`) with invalid UTF-8 bytes inside that string. */
export function withInvalidUtf8 (rng: Prng, fields: Field[]): { label: string, body: Buffer } {
  const [label, bytes] = rng.pick(invalidUtf8Sequences)
  const marker = 'INVALIDUTF8HERE'
  const others = fields.filter(([k]) => k !== 'description')
  const text = objectText([...others, ['description', j(`before ${marker} after`)]])
  const at = text.indexOf(marker)
  return {
    label,
    body: Buffer.concat([Buffer.from(text.slice(0, at), 'utf8'), Buffer.from(bytes), Buffer.from(text.slice(at + marker.length), 'utf8')]),
  }
}

export function encodedBody (rng: Prng, text: string): { label: string, body: Buffer } {
  const utf16be = (s: string): Buffer => Buffer.from(s, 'utf16le').swap16()
  const options: Array<[string, () => Buffer]> = [
    ['UTF-8 BOM', () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')])],
    ['UTF-16LE BOM', () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')])],
    ['UTF-16BE BOM', () => Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(text)])],
    ['UTF-16LE', () => Buffer.from(text, 'utf16le')],
    ['UTF-32-ish', () => Buffer.concat([...text].map((c) => { const b = Buffer.alloc(4); b.writeUInt32LE(c.codePointAt(0) ?? 0); return b }))],
    ['latin1', () => Buffer.from(text, 'latin1')],
    ['NUL inside', () => Buffer.from(text.replace('"currency"', '"curr\u0000ency"'), 'utf8')],
    ['raw control char in string', () => Buffer.from(text.replace(/"(pm_[a-z_]+)"/, '"$1\u0001"'), 'utf8')],
  ]
  const [label, make] = rng.pick(options)
  return { label, body: make() }
}

// ---------------------------------------------------------------------------------------------
// Header values.

export const contentTypePool: readonly string[] = [
  'application/json', 'application/JSON', 'APPLICATION/JSON', 'application/json; charset=utf-8', 'application/json;charset=UTF-8',
  'application/json; charset="utf-8"', 'application/json; charset=utf-16', 'application/json; charset=latin1',
  'application/json; charset=utf8', 'application/json; charset=', 'application/json;;;', 'application/json; foo=bar',
  ' application/json ', 'application/jsonp', 'application/json-patch+json', 'application/problem+json', 'text/json',
  'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '*/*', 'application/*', '',
  'application/json, text/plain', 'application/json; charset=utf-8; charset=utf-16', `application/${'x'.repeat(7000)}`,
  'application/jsön', 'application/json\u0001',
]

/** Checkout ids for the header, from a valid base id. Values are what the client sends. */
export function checkoutIdVariants (base: string): readonly string[] {
  return [
    base, '', ' ', `  ${base}  `, `\t${base}`, `${base} x`, base.padEnd(64, 'a'), base.padEnd(65, 'a'), `${base}ü`, `${base}😀`,
    `${base}.x`, `${base}/x`, `${base}%41`, '..', '.', '4242424242424242', '4242-4242-4242-4242', '4242 4242 4242 4242',
    '378282246310005', `${base}-4242424242424241`, `${base}4242424242424242`, 'x'.repeat(7000), `${base};x`, `${base},${base}`,
    `${base}\u0000`, `${base}\u007f`, `${base}\u00a0`, 'ＡＢＣ', `${base}\r`, `-${base}`, `_${base}`, base.toUpperCase(),
  ]
}

export function authorizationVariants (key: string, otherKey: string): readonly string[] {
  return [
    `Bearer ${key}`, `Bearer ${otherKey}`, '', 'Bearer', 'Bearer ', `bearer ${key}`, `BEARER ${key}`, `Bearer  ${key}`,
    `Bearer ${key} `, `Bearer\t${key}`, key, `Basic ${Buffer.from(`${key}:`).toString('base64')}`, `Bearer ${key.toUpperCase()}`,
    `Bearer ${key.slice(0, -1)}`, `Bearer ${key}x`, `Bearer ${'k'.repeat(300)}`, `Bearer ${key}ü`, `Bearer ${key}\u0000`,
    `Bearer ${key}, Bearer ${otherKey}`, 'Bearer sk_test_nope', `Token ${key}`, `Bearer ${'x'.repeat(7000)}`,
  ]
}

/** Mutated checkout ids must not land on another payment: the test checks these are never stored. */
export function validIdCandidates (sent: string): string[] {
  const trimmed = sent.replace(/^[ \t]+|[ \t]+$/g, '')
  return /^[A-Za-z0-9_-]{1,64}$/.test(trimmed) ? [trimmed] : []
}

/** A Luhn-valid digit string of `length` starting with `first`, for card-number-like ids. */
export function luhnDigits (rng: Prng, length: number, first: number): string {
  const digits = [first, ...Array.from({ length: length - 2 }, () => rng.int(0, 9))]
  for (let check = 0; check < 10; check++) {
    const all = [...digits, check]
    let sum = 0
    for (let i = all.length - 1, double = false; i >= 0; i--, double = !double) {
      let d = all[i] as number
      if (double) { d *= 2; if (d > 9) d -= 9 }
      sum += d
    }
    if (sum % 10 === 0) return all.join('')
  }
  throw new Error('unreachable: one check digit always fits')
}
