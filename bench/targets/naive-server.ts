// Target (b), the naive alternative: the same API shape as the payment node (API key check, JSON
// parse, minimal validation), and each request written with one INSERT into Postgres before the
// 202 — a `pg` Pool of 10, synchronous_commit on, as most systems start. Echoes the checkout id
// in the body like the other targets.
//
//   BENCH_PORT=… BENCH_DATABASE_URL=postgres://… BENCH_TABLE=… BENCH_API_KEYS_FILE=… \
//     node bench/targets/naive-server.ts                     (GET /healthz answers 200)

import { hash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import pg from 'pg'
import { naiveTablePattern } from './naive-schema.ts'
import { bodyBytesMax, createTargetServer, listenUntilSignalled, readBodyChunks, sendJsonText } from './target-http.ts'

/** Connections in the pool: the classic default-ish size. */
const poolSize = 10
/** Waiting for a pooled connection longer than this answers 503. */
const poolAcquireTimeoutMs = 5_000
/** An INSERT (commit included) slower than this answers 503. */
const insertTimeoutMs = 10_000

function env (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is required`)
  return value
}

const port = Number(env('BENCH_PORT'))
const table = env('BENCH_TABLE')
if (!naiveTablePattern.test(table)) throw new Error('BENCH_TABLE must be a plain lower-case identifier')
const keys = JSON.parse(readFileSync(env('BENCH_API_KEYS_FILE'), 'utf8')) as { keys: Array<{ merchant_id: string, key_sha256: string }> }
const merchantByDigest = new Map(keys.keys.map((k) => [k.key_sha256, k.merchant_id]))

const pool = new pg.Pool({
  connectionString: env('BENCH_DATABASE_URL'),
  max: poolSize,
  connectionTimeoutMillis: poolAcquireTimeoutMs,
  query_timeout: insertTimeoutMs,
  // Explicit, whatever the server's default: each 202 means the row is fsynced.
  options: '-c synchronous_commit=on',
})
pool.on('error', () => {})

const insertSql = `INSERT INTO ${table}
  (checkout_id, merchant_id, amount, currency, payment_method, description, customer_ref, metadata, status, created_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)`
const checkoutIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const currencyPattern = /^[A-Z]{3}$/

function send (res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body))
}

function problem (res: ServerResponse, status: number, code: string): void {
  send(res, status, { status, code })
}

const server = createTargetServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'alive' })
  if (req.method !== 'POST' || req.url !== '/payments') return problem(res, 404, 'not_found')
  const checkoutId = req.headers['x-payment-checkout-id']
  if (typeof checkoutId !== 'string' || !checkoutIdPattern.test(checkoutId)) return problem(res, 400, 'checkout_id_invalid')
  const auth = req.headers.authorization
  const merchantId = auth?.startsWith('Bearer ') ? merchantByDigest.get(hash('sha256', auth.slice(7), 'hex')) : undefined
  if (merchantId === undefined) return problem(res, 401, 'unauthorized')
  if (!req.headers['content-type']?.startsWith('application/json')) return problem(res, 415, 'unsupported_media_type')
  readBodyChunks(req, (chunks, bytes) => {
    if (bytes > bodyBytesMax) return problem(res, 413, 'body_too_large')
    let body: Record<string, unknown>
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
    } catch {
      return problem(res, 400, 'invalid_json')
    }
    const { amount, currency, payment_method: paymentMethod, description = '', customer_ref: customerRef = '', metadata = {} } = body ?? {}
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0 ||
      typeof currency !== 'string' || !currencyPattern.test(currency) ||
      typeof paymentMethod !== 'string' || paymentMethod.length === 0 || paymentMethod.length > 128 ||
      typeof description !== 'string' || typeof customerRef !== 'string' ||
      typeof metadata !== 'object' || metadata === null) {
      return problem(res, 400, 'validation_failed')
    }
    const createdAt = new Date()
    pool.query(insertSql, [checkoutId, merchantId, amount, currency, paymentMethod, description, customerRef,
      JSON.stringify(metadata), createdAt]).then(() => {
      send(res, 202, { checkout_id: checkoutId, status: 'pending', amount, currency, created_at: createdAt.toISOString() })
    }, (error: { code?: string }) => {
      if (error.code === '23505') problem(res, 409, 'checkout_id_conflict')
      else problem(res, 503, 'database_unavailable')
    })
  })
})
listenUntilSignalled(server, port, () => pool.end())
