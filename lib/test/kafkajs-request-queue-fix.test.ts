// kafkajs' request queue must not spin a 1 ms timer while nothing is pending, and must still
// come back for requests that wait (throttled).

import t from 'tap'
import { KafkajsRequestQueue } from '../kafkajs-request-queue-fix.ts'

const silent = { debug () {}, info () {}, warn () {}, error () {} }

function queue (): any {
  const Queue = KafkajsRequestQueue as unknown as new (options: object) => any
  return new Queue({ maxInFlightRequests: 1, requestTimeout: 1_000, enforceRequestTimeout: true, clientId: 'test', broker: 'b:1', logger: silent })
}

t.test('an idle queue arms no timer after a check (what every response triggers)', async (t) => {
  const q = queue()
  t.teardown(() => q.destroy())
  let checks = 0
  const check = q.checkPendingRequests.bind(q)
  q.checkPendingRequests = () => { checks++; check() }
  q.checkPendingRequests()
  t.equal(q.throttleCheckTimeoutId, null, 'no timer armed')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(checks, 1, 'no checks after the first: unpatched kafkajs would have run ~50 (a 1 ms loop)')
})

t.test('a pending request while throttled still gets its check at the throttle\'s end', async (t) => {
  const q = queue()
  t.teardown(() => q.destroy())
  q.throttledUntil = Date.now() + 30
  const sent: string[] = []
  q.pending.push({ correlationId: 1, send: () => sent.push('sent'), pendingDuration: 0 })
  q.canSendSocketRequestImmediately = () => Date.now() >= q.throttledUntil
  q.sendSocketRequest = (request: { send: () => void }) => request.send()
  q.scheduleCheckPendingRequests()
  t.not(q.throttleCheckTimeoutId, null, 'a timer is armed')
  const deadline = Date.now() + 2_000
  while (sent.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
  t.same(sent, ['sent'], 'the pending request went out after the throttle')
  t.equal(q.pending.length, 0)
})
