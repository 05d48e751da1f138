// The pipelined consumer's pieces: which offsets may be committed, per-key order, the projection's
// group commit, and the handler that ties them together (fake node, PSP and Postgres).

import type { PaymentId } from '../../lib/payment-id.ts'
import t from 'tap'
import { pino } from 'pino'
import { OffsetTracker, type ConsumedMessage } from '../../lib/event-bus.ts'
import { encodeChangeEvent, type ChangeEvent, type EventType, type PaymentStatus } from '../../lib/payment-codec.ts'
import { handleMessages, type PipelineDeps } from '../batch-handler.ts'
import type { ChargeFlowDeps } from '../charge-flow.ts'
import { KeyedQueue } from '../key-queue.ts'
import { createProcessorMetrics } from '../metrics.ts'
import type { NodePayment, TransitionCall } from '../node-client.ts'
import { ProjectionWriter } from '../projection-writer.ts'
import { PspError, type ChargeRequest } from '../psp/types.ts'
import { Semaphore } from '../semaphore.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'
import { eventMacHeader, EventSigner, EventVerifier, newEventKey } from '../../lib/event-signing.ts'

const silent = pino({ level: 'silent' })

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('offset tracker: commits only up to the lowest unfinished offset', (t) => {
  const tracker = new OffsetTracker()
  for (const offset of ['10', '11', '12', '13']) tracker.track('ev', 0, offset)
  tracker.track('ev', 1, '5')
  t.equal(tracker.unfinished, 5)
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 0, offset: '10' }, { topic: 'ev', partition: 1, offset: '5' }],
    'nothing finished: the first offset of each partition (already committed or earlier) is due once')
  tracker.markCommitted(tracker.commitsDue())
  tracker.finish('ev', 0, '12')
  tracker.finish('ev', 0, '11')
  t.same(tracker.commitsDue(), [], '10 still runs: 11 and 12 finishing out of order commit nothing')
  tracker.finish('ev', 0, '10')
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 0, offset: '13' }], 'up to the lowest unfinished, 13')
  tracker.finish('ev', 0, '13')
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 0, offset: '14' }], 'all finished: one past the last handed over')
  tracker.markCommitted([{ topic: 'ev', partition: 0, offset: '14' }])
  t.same(tracker.commitsDue(), [], 'committed offsets are not due again')
  t.equal(tracker.unfinished, 1)
  t.end()
})

t.test('offset tracker: gaps, order and misuse', (t) => {
  const tracker = new OffsetTracker()
  tracker.track('ev', 0, '3')
  tracker.track('ev', 0, '7') // offsets 4..6 were never delivered (e.g. control records)
  t.throws(() => tracker.track('ev', 0, '5'), RangeError, 'a partition is tracked in ascending order')
  t.throws(() => tracker.finish('ev', 0, '5'), RangeError, 'an offset never handed over cannot finish')
  tracker.finish('ev', 0, '7')
  t.throws(() => tracker.finish('ev', 0, '7'), RangeError, 'nor finish twice')
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 0, offset: '3' }])
  tracker.finish('ev', 0, '3')
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 0, offset: '8' }])
  t.throws(() => tracker.finish('ev', 0, '3'), RangeError, 'a dropped (finished) offset cannot finish again')
  t.end()
})

t.test('offset tracker: many offsets finished in reverse order', (t) => {
  const tracker = new OffsetTracker()
  const count = 5_000
  for (let i = 0; i < count; i++) tracker.track('ev', 2, String(i))
  for (let i = count - 1; i >= 1; i--) tracker.finish('ev', 2, String(i))
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 2, offset: '0' }])
  tracker.finish('ev', 2, '0')
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 2, offset: String(count) }])
  t.equal(tracker.unfinished, 0)
  // Keeps working after compaction.
  tracker.track('ev', 2, String(count + 10))
  t.same(tracker.commitsDue(), [{ topic: 'ev', partition: 2, offset: String(count + 10) }])
  t.end()
})

t.test('keyed queue: one key in order, other keys meanwhile, failures do not block', async (t) => {
  const queue = new KeyedQueue()
  const log: string[] = []
  const gate = deferred()
  const a1 = queue.run('a', async () => { await gate.promise; log.push('a1') })
  const a2 = queue.run('a', async () => { log.push('a2'); throw new Error('boom') })
  const a3 = queue.run('a', async () => { log.push('a3') })
  const b1 = queue.run('b', async () => { log.push('b1') })
  await b1
  t.same(log, ['b1'], 'b is not held back by a')
  await tick()
  t.equal(queue.keys, 1, 'b is forgotten once done; a is still queued')
  gate.resolve()
  await a1
  await t.rejects(a2, { message: 'boom' })
  await a3
  t.same(log, ['b1', 'a1', 'a2', 'a3'], 'a runs in submission order, past a failure')
  await tick()
  t.equal(queue.keys, 0, 'no entry left once idle')
})

function event (checkoutId: string, sequence: number, type: EventType, status: PaymentStatus, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    eventId: `n1:${sequence}`,
    nodeId: 'n1',
    sequence,
    type,
    checkoutId,
    version: type === 'payment.created' ? 1 : sequence,
    occurredAtMs: 1_700_000_000_000,
    payment: {
      checkoutId,
      merchantId: 'm1',
      amount: 1999,
      currency: 'EUR',
      paymentMethod: 'pm_card_visa',
      description: '',
      customerRef: '',
      metadata: {},
      status,
      version: type === 'payment.created' ? 1 : sequence,
      createdAtMs: 1_700_000_000_000,
      updatedAtMs: 1_700_000_000_000,
      requestHash: new Uint8Array(32),
      failureCode: '',
      failureMessage: '',
      pspReference: '',
      nodeId: 'n1',
      refunds: [],
    },
    previousStatus: type === 'payment.created' ? undefined : 'pending',
    actor: 'test',
    webhook: undefined,
    refundId: '',
    ...extra,
  }
}

// Every node's signing key, as the processors hold them; each node signs with its own.
const eventKeys = { keys: [newEventKey('n1-k1', 'n1'), newEventKey('n2-k1', 'n2')] }
const verifier = new EventVerifier(eventKeys)
const signers = new Map(eventKeys.keys.map((k) => [k.node, new EventSigner(k.id, k.key)]))

/** A change event as a relay publishes it: signed by the node it names (or `signer`, or unsigned when null). */
function message (offset: number, e: ChangeEvent | Uint8Array, key = e instanceof Uint8Array ? 'x' : e.checkoutId, signer?: EventSigner | null): ConsumedMessage {
  const value = e instanceof Uint8Array ? e : encodeChangeEvent(e, testKeyRing)
  const by = signer === undefined ? (e instanceof Uint8Array ? undefined : signers.get(e.nodeId)) : signer ?? undefined
  return { topic: 'payments.events', partition: 0, offset: String(offset), key, value, headers: by === undefined ? {} : { [eventMacHeader]: by.sign(value) } }
}

t.test('projection writer: one statement per turn for everything submitted meanwhile, retried until written', async (t) => {
  const statements: string[][] = []
  const first = deferred()
  let failures = 1
  const writer = new ProjectionWriter(async (events) => {
    statements.push(events.map((e) => e.eventId))
    if (statements.length === 1) await first.promise
    else if (failures-- > 0) throw new Error('postgres down')
  }, { eventsPerStatementMax: 3, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, silent)
  const e = (seq: number): ChangeEvent => event('a', seq, 'payment.status_changed', 'processing')
  const p1 = writer.submit([e(1)])
  const p2 = writer.submit([e(2), e(2)])
  const p3 = writer.submit([e(3)])
  const p4 = writer.submit([e(4), e(5)])
  let p2Done = false
  void p2.then(() => { p2Done = true })
  await tick()
  t.notOk(p2Done, 'nothing later resolves while the first statement runs')
  first.resolve()
  await Promise.all([p1, p2, p3, p4])
  t.same(statements, [['n1:1'], ['n1:2', 'n1:3'], ['n1:2', 'n1:3'], ['n1:4', 'n1:5']],
    'queued submissions join one statement up to the bound, a copy of an event id once; a failed statement is retried as it was')
})

interface FakeWorld {
  deps: PipelineDeps
  charges: string[]
  transitions: string[]
  flags: string[]
  deadLetters: Array<{ offset: string, reason: string }>
  projected: string[][]
  /** Charges for these ids wait for the gate. */
  slow: Map<string, ReturnType<typeof deferred>>
}

function world (): FakeWorld {
  const w: FakeWorld = { charges: [], transitions: [], flags: [], deadLetters: [], projected: [], slow: new Map(), deps: undefined as unknown as PipelineDeps }
  const versions = new Map<string, number>()
  const payment = (id: string, status: PaymentStatus, version: number): NodePayment => ({
    checkout_id: id, merchant_id: 'm1', status, version, amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa', description: '',
  })
  const flow = {
    node: {
      async transition ({ checkout_id: id }: PaymentId, call: TransitionCall) {
        w.transitions.push(`${id}:${call.to}`)
        const version = (versions.get(id) ?? 1) + 1
        versions.set(id, version)
        return { applied: true, payment: payment(id, call.to, version) }
      },
      async get ({ checkout_id: id }: PaymentId) { return payment(id, 'processing', versions.get(id) ?? 1) },
    },
    psp: {
      name: 'sandbox',
      chargeBody: (request: ChargeRequest) => request,
      async charge (request: ChargeRequest) {
        await w.slow.get(request.checkoutId)?.promise
        w.charges.push(request.checkoutId)
        return { outcome: { kind: 'succeeded', pspReference: `ch_${request.checkoutId}` }, httpStatus: 201, responseBody: {}, latencyMs: 1 }
      },
    },
    attempts: { async record () {} },
    pspSlots: new Semaphore(16),
    log: silent,
    flag: async (id: PaymentId) => { w.flags.push(id.checkout_id) },
  } as unknown as ChargeFlowDeps
  w.deps = {
    sealer: testKeyRing,
    flow,
    projection: new ProjectionWriter(async (events) => { w.projected.push(events.map((e) => e.eventId)) },
      { eventsPerStatementMax: 100, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, silent),
    keys: new KeyedQueue(),
    deadLetters: { publish: async (m: ConsumedMessage, reason: string) => { w.deadLetters.push({ offset: m.offset, reason }) } },
    metrics: createProcessorMetrics('test', { pspInFlight: () => 0, paymentsInFlight: () => 0 }),
    log: silent,
    verifier,
  }
  return w
}

t.test('handler: a slow PSP call holds back only its own payment', async (t) => {
  const w = world()
  w.slow.set('slow', deferred())
  const done = handleMessages(w.deps, [
    message(0, event('slow', 1, 'payment.created', 'pending')),
    message(1, event('fast', 2, 'payment.created', 'pending')),
    message(2, event('other', 3, 'payment.status_changed', 'succeeded')),
  ])
  t.equal(done.length, 3, 'one promise per message')
  await Promise.all([done[1], done[2]])
  t.same(w.charges, ['fast'], 'the later payment of the same partition was charged and finished first')
  t.same(w.transitions, ['slow:processing', 'fast:processing', 'fast:succeeded'])
  let slowDone = false
  void done[0]!.then(() => { slowDone = true })
  await tick()
  t.notOk(slowDone, 'the slow one is still unfinished (its offset is not committable)')
  w.slow.get('slow')!.resolve()
  await done[0]
  t.same(w.charges, ['fast', 'slow'])
  t.same(w.transitions.slice(-1), ['slow:succeeded'])
  t.same(w.projected, [['n1:1', 'n1:2', 'n1:3']], 'the batch is projected in one statement')
})

t.test('handler: driving starts while projecting; a flag and the finish wait for the projection', async (t) => {
  const w = world()
  const postgres = deferred()
  const flow = w.deps.flow as unknown as { psp: { charge: (r: ChargeRequest) => Promise<unknown> } }
  flow.psp.charge = async () => ({ outcome: { kind: 'flagged', pspReference: 'ch_x', reason: 'other amount' }, httpStatus: 201, responseBody: {}, latencyMs: 1 })
  w.deps.projection = new ProjectionWriter(async (events) => {
    await postgres.promise
    w.projected.push(events.map((e) => e.eventId))
  }, { eventsPerStatementMax: 100, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, silent)
  const [done] = handleMessages(w.deps, [message(0, event('a', 1, 'payment.created', 'pending'))])
  let finished = false
  void done!.then(() => { finished = true })
  for (let i = 0; i < 10; i++) await tick()
  t.same(w.transitions, ['a:processing'], 'the node was called before the row is in Postgres')
  t.same(w.flags, [], 'the flag waits for the row')
  t.notOk(finished)
  postgres.resolve()
  await done
  t.same(w.projected, [['n1:1']])
  t.same(w.flags, ['a'])
})

t.test('handler: events of one checkout id run in order across batches', async (t) => {
  const w = world()
  w.slow.set('a', deferred())
  const first = handleMessages(w.deps, [message(0, event('a', 1, 'payment.created', 'pending'))])
  const mismatch = event('a', 2, 'payment.webhook_received', 'processing', {
    webhook: { provider: 'sandbox', pspEventId: 'evt_1', type: 'charge.succeeded', payloadJson: '{}', applied: false, note: 'amount_mismatch', receivedAtMs: 1 },
  })
  const second = handleMessages(w.deps, [message(1, mismatch), message(2, event('b', 3, 'payment.created', 'pending'))])
  await second[1]
  t.same(w.flags, [], 'the flag for a waits for the charge of a, delivered earlier')
  t.same(w.charges, ['b'])
  w.slow.get('a')!.resolve()
  await Promise.all([...first, ...second])
  t.same(w.charges, ['b', 'a'])
  t.same(w.flags, ['a'], 'then the flag')
})

t.test('handler: poison and dead letters finish their message; a bug rejects it', async (t) => {
  const w = world()
  const done = handleMessages(w.deps, [
    message(0, new Uint8Array([0xff, 0xff, 0xff])),
    message(1, event('dl', 2, 'payment.created', 'pending')),
    message(2, event('bug', 3, 'payment.created', 'pending')),
  ])
  const node = w.deps.flow.node as unknown as { transition: (id: PaymentId, call: TransitionCall) => Promise<unknown> }
  const original = node.transition
  node.transition = async (id, call) => {
    if (id.checkout_id === 'dl') throw new (await import('../charge-flow.ts')).DeadLetter('node_unavailable', 'down')
    if (id.checkout_id === 'bug') throw new TypeError('a bug')
    return original(id, call)
  }
  await done[0]
  await done[1]
  await t.rejects(done[2]!, TypeError, 'an unexpected error is not swallowed: the consumer starts over')
  t.same(w.deadLetters, [{ offset: '0', reason: 'poison' }, { offset: '1', reason: 'node_unavailable' }])
})

/** A `requires_action → canceled` event of a payment whose PSP charge is `ch_<id>`. */
function canceledEvent (checkoutId: string, sequence: number, actor = 'api'): ChangeEvent {
  const e = event(checkoutId, sequence, 'payment.status_changed', 'canceled', { previousStatus: 'requires_action', actor })
  return { ...e, payment: { ...e.payment, pspReference: `ch_${checkoutId}` } }
}

t.test('handler: a payment canceled at requires_action has its charge canceled at the PSP', async (t) => {
  const w = world()
  const cancels: string[] = []
  const flow = w.deps.flow as unknown as { psp: Record<string, unknown> }
  flow.psp.cancelCharge = async (reference: string) => {
    cancels.push(reference)
    return { outcome: { kind: 'canceled' }, httpStatus: 200, responseBody: {}, latencyMs: 1 }
  }
  await Promise.all(handleMessages(w.deps, [
    message(0, canceledEvent('a', 2)),
    message(1, canceledEvent('b', 3, 'webhook:sandbox')),
    message(2, event('c', 4, 'payment.status_changed', 'canceled')),
  ]))
  t.same(cancels, ['ch_a'], 'only the merchant\'s cancel of a charge awaiting the customer; not the PSP\'s own, not a pending one')
  t.same(w.charges, [], 'nothing charged')
  t.same(w.flags, [])
})

t.test('handler: a charge that left requires_action before the cancel is given back whole, or flagged if unclear', async (t) => {
  const w = world()
  const flow = w.deps.flow as unknown as { psp: Record<string, unknown>, node: Record<string, unknown> }
  const refunded: string[] = []
  flow.node.refundCanceledCharge = async (id: PaymentId, pspReference: string) => {
    refunded.push(`${id.checkout_id}:${pspReference}`)
    return { created: true, refund: { id: 're_1', amount: 1999, currency: 'EUR', status: 'pending' } }
  }
  flow.psp.cancelCharge = async () => ({ outcome: { kind: 'not_cancelable', detail: 'succeeded' }, httpStatus: 400, responseBody: {}, latencyMs: 1 })
  flow.psp.findCharge = async (request: ChargeRequest) => request.checkoutId === 'paid'
    ? { kind: 'succeeded', pspReference: 'ch_paid' }
    : request.checkoutId === 'unclear'
      ? { kind: 'pending', pspReference: 'ch_unclear' }
      : { kind: 'failed', pspReference: 'ch_declined', failureCode: 'card_declined', failureMessage: '' }
  await Promise.all(handleMessages(w.deps, [message(0, canceledEvent('paid', 2)), message(1, canceledEvent('declined', 3)), message(2, canceledEvent('unclear', 4))]))
  t.same(refunded, ['paid:ch_paid'], 'canceled but charged: the node refunds the charge whole')
  t.same(w.flags, ['unclear'], 'a failed charge took nothing; one the PSP calls neither final state is for a person')
})

t.test('handler: a PSP cancel refused for good is dead-lettered, not retried', async (t) => {
  const w = world()
  let calls = 0
  const flow = w.deps.flow as unknown as { psp: Record<string, unknown> }
  flow.psp.cancelCharge = async () => {
    calls++
    throw new PspError('psp_rejected', 'answered 404 (resource_missing)', { httpStatus: 404 })
  }
  await Promise.all(handleMessages(w.deps, [message(7, canceledEvent('gone', 2))]))
  t.equal(calls, 1, 'a non-retriable refusal is not retried')
  t.same(w.deadLetters, [{ offset: '7', reason: 'psp_rejected' }])
})

// Issue #17 part 3: only events their node signed reach the projection or the PSP.

async function settle (w: FakeWorld, messages: ConsumedMessage[]): Promise<void> {
  await Promise.all(handleMessages(w.deps, messages))
}

function refusedCount (w: FakeWorld, reason: string): Promise<number> {
  return w.deps.metrics.registry.getSingleMetric('ringpay_processor_events_refused_total')!.get().then((m) =>
    m.values.find((v) => v.labels.reason === reason)?.value ?? 0)
}

t.test('handler: events that are not their node\'s are refused, dead-lettered and counted, never projected or charged', async (t) => {
  const w = world()
  const created = (id: string, seq: number, extra: Partial<ChangeEvent> = {}): ChangeEvent => event(id, seq, 'payment.created', 'pending', extra)
  const forgedHigh = event('paid', 900, 'payment.status_changed', 'succeeded', { version: 50, payment: { ...created('paid', 1).payment, status: 'succeeded', version: 50 } })
  // Signed, then one byte of the checkout id changed (the bytes still read as an event).
  const tampered = message(4, created('tampered', 4))
  const bytes = Buffer.from(tampered.value)
  bytes[bytes.indexOf('tampered')] = 'u'.charCodeAt(0)
  tampered.value = new Uint8Array(bytes)
  const mismatched = created('mismatched', 6, { eventId: 'n1:7' })
  const foreignPayment = created('foreign', 8)
  foreignPayment.payment = { ...foreignPayment.payment, nodeId: 'n2' }
  const unknownKey = new EventSigner('n9-k1', newEventKey('n9-k1', 'n9').key)
  await settle(w, [
    message(0, forgedHigh, 'paid', null), // unsigned: a producer that got onto the topic
    message(1, created('wrong-node', 1), 'wrong-node', signers.get('n2')), // node 2's key vouching for node 1's event
    message(2, created('unknown-key', 2), 'unknown-key', unknownKey),
    { ...message(3, created('malformed', 3)), headers: { [eventMacHeader]: 'n1-k1.bm90IGEgbWFj' } },
    tampered,
    message(5, mismatched),
    message(6, foreignPayment),
  ])
  t.same(w.deadLetters, [
    { offset: '0', reason: 'event_mac_missing' },
    { offset: '1', reason: 'event_mac_wrong_node' },
    { offset: '2', reason: 'event_mac_unknown_key' },
    { offset: '3', reason: 'event_mac_malformed' },
    { offset: '4', reason: 'event_mac_invalid' },
    { offset: '5', reason: 'event_identity_mismatch' },
    { offset: '6', reason: 'event_identity_mismatch' },
  ], 'each refused with its reason')
  t.same(w.projected, [], 'nothing projected')
  t.same(w.charges, [], 'nothing charged')
  t.same(w.transitions, [], 'no node called')
  t.equal(await refusedCount(w, 'event_mac_missing'), 1, 'counted by reason')
  t.equal(await refusedCount(w, 'event_identity_mismatch'), 2)
})

t.test('handler: an event the projection refuses as another node\'s payment is dead-lettered, the rest go on', async (t) => {
  const w = world()
  w.deps.projection = new ProjectionWriter(async (events) => {
    w.projected.push(events.map((e) => e.eventId))
    return new Map(events.filter((e) => e.checkoutId === 'owned-by-n2').map((e) => [e.eventId, 'checkout id belongs to node n2 in Postgres']))
  }, { eventsPerStatementMax: 100, backoffBaseDelayMs: 1, backoffDelayMsMax: 1 }, silent)
  const foreign = event('owned-by-n2', 3, 'payment.status_changed', 'failed')
  await settle(w, [message(0, foreign), message(1, event('fine', 4, 'payment.status_changed', 'failed'))])
  t.same(w.deadLetters, [{ offset: '0', reason: 'event_node_not_owner' }])
  t.equal(await refusedCount(w, 'event_node_not_owner'), 1)
})

t.test('handler: genuine events pass however they arrive: out of sequence order, redelivered, re-sent by the relay', async (t) => {
  const w = world()
  const e = (id: string, seq: number): ChangeEvent => event(id, seq, 'payment.status_changed', 'failed')
  // One node's events spread over partitions arrive out of sequence order; a redelivery after a
  // processor restart and a relay's re-sent batch bring the same bytes (and MACs) again.
  await settle(w, [message(0, e('a', 7)), message(1, e('b', 3))])
  await settle(w, [message(2, e('c', 5)), message(3, e('a', 7)), message(4, e('b', 3))])
  t.same(w.deadLetters, [], 'nothing refused')
  t.same(w.projected.flat().sort(), ['n1:3', 'n1:3', 'n1:5', 'n1:7', 'n1:7'], 'all projected (the projection drops copies by event id)')
  t.equal(await refusedCount(w, 'event_mac_invalid'), 0)
})
