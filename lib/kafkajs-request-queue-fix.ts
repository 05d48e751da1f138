// kafkajs 2.2.4's request queue re-arms its "check pending requests" timer after every check and
// every response, even when nothing is pending. Unthrottled, its delay is `throttledUntil -
// Date.now()` with throttledUntil = -1: negative, which Node clamps to 1 ms. So every broker
// connection, once it has had one response, runs a 1 kHz timer loop for as long as it is open
// (and Node 24 warns TimeoutNegativeWarning on each connection; tulios/kafkajs#1751, no release
// since). Measured here: ~4 % of a core per idle relay worker, and the same in every processor,
// reconciler and admin client, idle or not.
//
// The fix, on the class's prototype (so it holds whenever kafkajs creates a queue): arm the timer
// only when a request is pending. Nothing else needs it: a push that cannot be sent at once
// queues itself and schedules the check (then with a positive delay: the throttle's end, or
// kafkajs' 10 ms interval), and a fulfilled or timed-out request checks the queue itself.
// Imported for its effect by every module that creates a kafkajs client; installed once.

import { createRequire } from 'node:module'

interface RequestQueuePrototype {
  pending: unknown[]
  scheduleCheckPendingRequests: () => void
  [installed]?: true
}

const installed = Symbol.for('ringpay.kafkajsRequestQueueFix')
const require = createRequire(import.meta.url)
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueuePrototype }
const prototype = RequestQueue.prototype

if (prototype[installed] !== true) {
  prototype[installed] = true
  const scheduleCheckPendingRequests = prototype.scheduleCheckPendingRequests
  prototype.scheduleCheckPendingRequests = function (this: RequestQueuePrototype): void {
    if (this.pending.length === 0) return
    scheduleCheckPendingRequests.call(this)
  }
}

/** kafkajs' request queue class, for the test. */
export const KafkajsRequestQueue = RequestQueue
