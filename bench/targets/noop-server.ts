// Target (a), the ceiling: a Node HTTP server that reads the request body and answers 202 with a
// small JSON body echoing the checkout id, doing nothing else. Same server options as the payment
// node (target-http.ts), so the difference to (c) is the work (c) does, not the HTTP setup.
//
//   BENCH_PORT=20001 node bench/targets/noop-server.ts     (GET /healthz answers 200)

import { createTargetServer, listenUntilSignalled, readBodyChunks, sendJsonText, targetPort } from './target-http.ts'

const port = targetPort()

const server = createTargetServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return sendJsonText(res, 200, '{"status":"alive"}')
  readBodyChunks(req, () => {
    const id = req.headers['x-payment-checkout-id']
    sendJsonText(res, 202, JSON.stringify({ checkout_id: typeof id === 'string' ? id : null, status: 'pending' }))
  })
})
listenUntilSignalled(server, port)
