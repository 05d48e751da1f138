// The naive synchronous monolith of issue #13, the e2e bench's reference: what a team writes on
// day one. Per `POST /payments` (Ringpay's headers and body): an INSERT of a pending row, the
// sandbox PSP charge (idempotency key = checkout id), an UPDATE with the PSP's status, then 200
// with that status. Its PSP webhooks (`POST /webhooks/psp/sandbox/<id>`, signature checked) move
// a row still pending to the final status. Nothing of Ringpay's code but the signature check.
//
//   BENCH_PORT BENCH_DATABASE_URL BENCH_TABLE BENCH_API_KEYS_FILE BENCH_PSP_URL BENCH_PSP_SECRET_KEY
//   BENCH_PSP_WEBHOOK_SECRET  node bench/targets/monolith-server.ts          (GET /healthz: 200)

import type { ServerResponse } from 'node:http'
import pg from 'pg'
import { assertTable } from './naive-schema.ts'
import { merchantsByKeyDigest, readCreate, readWebhook } from './bench-requests.ts'
import { sandboxCharger } from './sandbox-charge.ts'
import { createTargetServer, listenUntilSignalled, readBodyChunks, sendJsonText, targetPort } from './target-http.ts'

const dbPoolSize = 10

const env = (name: string): string => process.env[name] || (() => { throw new Error(`${name} is required`) })()
const table = env('BENCH_TABLE')
assertTable(table)
const merchants = merchantsByKeyDigest(env('BENCH_API_KEYS_FILE'))
const db = new pg.Pool({ connectionString: env('BENCH_DATABASE_URL'), max: dbPoolSize, options: '-c synchronous_commit=on' })
db.on('error', () => {})
const psp = sandboxCharger({ url: env('BENCH_PSP_URL'), secretKey: env('BENCH_PSP_SECRET_KEY') })
const charge = psp.charge
const webhookSecret = env('BENCH_PSP_WEBHOOK_SECRET')
const send = (res: ServerResponse, status: number, body: unknown): void => sendJsonText(res, status, JSON.stringify(body))

const server = createTargetServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { status: 'alive' })
  readBodyChunks(req, (chunks, bytes) => {
    const text = Buffer.concat(chunks).toString('utf8')
    const webhook = readWebhook(webhookSecret, req, text)
    if (webhook.kind === 'refused') return send(res, 400, { code: 'webhook_signature_invalid' })
    if (webhook.kind === 'charge') {
      return db.query(`UPDATE ${table} SET status = $2, updated_at = now() WHERE checkout_id = $1 AND status = 'pending' AND $2 <> 'pending'`, [webhook.checkoutId, webhook.charge?.status ?? 'pending'])
        .then(() => send(res, 200, { received: true }), () => send(res, 503, { code: 'database_unavailable' }))
    }
    if (req.method !== 'POST' || req.url !== '/payments') return send(res, 404, { code: 'not_found' })
    const create = readCreate(merchants, req, text, bytes)
    if (!create.ok) return send(res, create.status, { code: create.code })
    const { checkoutId, merchantId, body: p } = create
    db.query(`INSERT INTO ${table} (checkout_id, merchant_id, amount, currency, status) VALUES ($1, $2, $3, $4, 'pending')`,
      [checkoutId, merchantId, p.amount, p.currency])
      .then(() => charge(checkoutId, merchantId, p))
      .then(async (c) => {
        await db.query(`UPDATE ${table} SET status = $2, psp_reference = $3, updated_at = now() WHERE checkout_id = $1 AND status = 'pending'`, [checkoutId, c.status, c.id])
        send(res, 200, { checkout_id: checkoutId, status: c.status, psp_reference: c.id })
      })
      .catch((error: { code?: string }) => send(res, error.code === '23505' ? 409 : 503, { code: error.code === '23505' ? 'checkout_id_conflict' : 'unavailable' }))
  })
})
listenUntilSignalled(server, targetPort(), () => Promise.all([db.end(), psp.close()]))
