// Target (d), the floor of the design: the "30-line group-commit probe". Node's http
// server, the body read and JSON-parsed, then one LevelDB put per request (key = checkout id,
// value = the body), written in batches with `sync: true` as soon as no batch is in flight, and
// the 202 sent once its batch is durable. No validation, auth, idempotency, protobuf, change
// log or metrics: what HTTP + fsynced group commit into classic-level cost on this machine, so
// (c)/(d) shows what the payment node's own work costs on top of its storage design.
// Same server setup as the no-op (a) and the naive server (b): target-http.ts.
//
//   BENCH_PORT=20001 BENCH_DATA_DIR=/tmp/probe node bench/targets/probe-server.ts   (GET /healthz answers 200)

import { ClassicLevel } from 'classic-level'
import type { ServerResponse } from 'node:http'
import { createTargetServer, listenUntilSignalled, readBodyChunks, sendJsonText, targetPort } from './target-http.ts'

/** Writes per batch at most, and queued writes at most (past it: 503), like the node's defaults. */
const batchSizeMax = 512
const queueLengthMax = 4096
const port = targetPort()
const dataDir = process.env.BENCH_DATA_DIR
if (dataDir === undefined || dataDir === '') throw new Error('BENCH_DATA_DIR must name the LevelDB directory')

const db = new ClassicLevel<string, string>(dataDir, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
await db.open()

interface Pending { key: string, body: string, res: ServerResponse, answer: string }
let queue: Pending[] = []
let writing = false

async function flush (): Promise<void> {
  if (writing || queue.length === 0) return
  writing = true
  const batch = queue.slice(0, batchSizeMax)
  queue = queue.slice(batch.length)
  const ops = db.batch()
  for (const p of batch) ops.put(p.key, p.body)
  await ops.write({ sync: true })
  writing = false
  for (const p of batch) sendJsonText(p.res, 202, p.answer)
  if (queue.length > 0) setImmediate(flush)
}

const server = createTargetServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return sendJsonText(res, 200, '{"status":"alive"}')
  readBodyChunks(req, (chunks) => {
    const id = req.headers['x-payment-checkout-id']
    const body = Buffer.concat(chunks).toString('utf8')
    try {
      JSON.parse(body)
    } catch {
      return sendJsonText(res, 400, '{"code":"invalid_json"}')
    }
    if (typeof id !== 'string') return sendJsonText(res, 400, '{"code":"checkout_id_missing"}')
    if (queue.length >= queueLengthMax) return sendJsonText(res, 503, '{"code":"overloaded"}')
    queue.push({ key: `p/${id}`, body, res, answer: JSON.stringify({ checkout_id: id, status: 'pending' }) })
    if (!writing) setImmediate(flush)
  })
})
listenUntilSignalled(server, port, () => db.close())
