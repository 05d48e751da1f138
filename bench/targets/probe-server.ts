// Target (d), the floor of the design: the "30-line group-commit probe". Node's http
// server, the body read and JSON-parsed, then one LevelDB put per request (key = checkout id,
// value = the body), written in batches with `sync: true` as soon as no batch is in flight, and
// the 202 sent once its batch is durable. No validation, auth, idempotency, protobuf, change
// log or metrics: what HTTP + fsynced group commit into classic-level cost on this machine, so
// (c)/(d) shows what the payment node's own work costs on top of its storage design.
// Same server options as the no-op (a) and the payment node.
//
//   BENCH_PORT=20001 BENCH_DATA_DIR=/tmp/probe node bench/targets/probe-server.ts   (GET /healthz answers 200)

import { createServer, type ServerResponse } from 'node:http'
import { ClassicLevel } from 'classic-level'

const requestTimeoutMs = 10_000
const keepAliveTimeoutMs = 65_000
/** Body bytes kept at most (the rest is read and dropped), like the no-op. */
const bodyBytesMax = 16 * 1024
/** Writes per batch at most, and queued writes at most (past it: 503), like the node's defaults. */
const batchSizeMax = 512
const queueLengthMax = 4096
const host = '127.0.0.1'
const port = Number(process.env.BENCH_PORT)
if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error('BENCH_PORT must be a port number')
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
  for (const p of batch) send(p.res, 202, p.answer)
  if (queue.length > 0) setImmediate(flush)
}

function send (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

const server = createServer({
  requestTimeout: requestTimeoutMs,
  headersTimeout: requestTimeoutMs,
  keepAliveTimeout: keepAliveTimeoutMs,
  maxHeaderSize: 16 * 1024,
}, (req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, '{"status":"alive"}')
  const chunks: Buffer[] = []
  let bytes = 0
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    if (bytes <= bodyBytesMax) chunks.push(chunk)
  })
  req.on('end', () => {
    const id = req.headers['x-payment-checkout-id']
    const body = Buffer.concat(chunks).toString('utf8')
    try {
      JSON.parse(body)
    } catch {
      return send(res, 400, '{"code":"invalid_json"}')
    }
    if (typeof id !== 'string' || queue.length >= queueLengthMax) return send(res, typeof id !== 'string' ? 400 : 503, '{}')
    queue.push({ key: `p/${id}`, body, res, answer: JSON.stringify({ checkout_id: id, status: 'pending' }) })
    if (!writing) setImmediate(flush)
  })
})
server.listen({ host, port, backlog: 1024 })

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close()
    server.closeAllConnections()
    db.close().finally(() => process.exit(0))
  })
}
