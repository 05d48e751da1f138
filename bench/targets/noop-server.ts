// Target (a), the ceiling: a Node HTTP server that reads the request body and answers 202 with a
// small JSON body echoing the checkout id, doing nothing else. Same server options as the payment
// node (payment-svc/server.ts), so the difference to (c) is the work (c) does, not the HTTP setup.
//
//   BENCH_PORT=20001 node bench/targets/noop-server.ts     (GET /healthz answers 200)

import { createServer } from 'node:http'

/** Same as the payment node's limits: slow clients cut off, nginx closes idle connections first. */
const requestTimeoutMs = 10_000
const keepAliveTimeoutMs = 65_000
/** Body bytes kept at most (the rest is read and dropped). */
const bodyBytesMax = 16 * 1024
const host = '127.0.0.1'
const port = Number(process.env.BENCH_PORT)
if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error('BENCH_PORT must be a port number')

const server = createServer({
  requestTimeout: requestTimeoutMs,
  headersTimeout: requestTimeoutMs,
  keepAliveTimeout: keepAliveTimeoutMs,
  maxHeaderSize: 16 * 1024,
}, (req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 18 })
    res.end('{"status":"alive"}')
    return
  }
  const chunks: Buffer[] = []
  let bytes = 0
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length
    if (bytes <= bodyBytesMax) chunks.push(chunk)
  })
  req.on('end', () => {
    const id = req.headers['x-payment-checkout-id']
    const body = JSON.stringify({ checkout_id: typeof id === 'string' ? id : null, status: 'pending' })
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.listen({ host, port, backlog: 1024 })

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.close()
    server.closeAllConnections()
    process.exit(0)
  })
}
