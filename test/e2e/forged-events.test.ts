// Issue #17 part 3: a forged change event with a high version, put on the events topic by a
// producer that got there (here: the super user, past every ACL), does not move the payment in
// Postgres; it is dead-lettered with the reason, and normal traffic goes on.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { eventMacHeader, EventSigner, type EventKeysFile } from '../../lib/event-signing.ts'
import { KeyRing } from '../../lib/field-crypto.ts'
import { createKafkaProducer } from '../../lib/kafka-event-bus.ts'
import { encodeChangeEvent, type ChangeEvent } from '../../lib/payment-codec.ts'
import { getInternal } from '../helpers/api.ts'
import { closeDb, createSettledForAction, createWith, db, nodeReaches, postgresReaches } from '../helpers/e2e.ts'
import { EventCollector } from '../helpers/events.ts'
import { kafkaEndpoint, loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const settleDeadlineMs = 30_000
/** Far past any sequence a test stack's node reaches, so no genuine event id is ever taken. */
const forgedSequenceBase = 1_000_000_000_000
const versionJump = 100
t.teardown(closeDb)

t.test('forged events do not move a payment in Postgres and are dead-lettered', async (t) => {
  // requires_action: the payment stays put, so any move in Postgres would be the forgery's.
  const { id, version } = await createSettledForAction('forged')
  const before = await postgresReaches(id, version, settleDeadlineMs)

  // The genuine event that brought it there, as the template of the forgeries.
  const events = await EventCollector.start((key) => key === id)
  t.teardown(() => events.close())
  await events.waitFor(() => events.events.some((e) => e.event.version === version), settleDeadlineMs, `${id}'s event at version ${version}`)
  const genuine = events.events.find((e) => e.event.version === version)!.event
  const owner = genuine.nodeId
  const keys = (JSON.parse(readFileSync(stack.eventKeysFile, 'utf8')) as EventKeysFile).keys
  const otherKey = keys.find((k) => k.node !== owner)!
  const otherSigner = new EventSigner(otherKey.id, otherKey.key)
  const sealer = KeyRing.fromFile(stack.fieldKeysFile)

  /** `succeeded` at a much higher version, with no charge behind it, as node `nodeId`'s event. */
  const forge = (nodeId: string, n: number, signer: EventSigner | undefined) => {
    const sequence = forgedSequenceBase + n
    const event: ChangeEvent = {
      ...genuine,
      eventId: `${nodeId}:${sequence}`,
      nodeId,
      sequence,
      type: 'payment.status_changed',
      version: version + versionJump,
      previousStatus: genuine.payment.status,
      actor: 'processor',
      webhook: undefined,
      refundId: '',
      payment: { ...genuine.payment, nodeId, status: 'succeeded', version: version + versionJump, pspReference: 'ch_forged' },
    }
    const value = encodeChangeEvent(event, sealer)
    return {
      eventId: event.eventId,
      message: { key: id, value, headers: { 'event-id': event.eventId, ...(signer ? { [eventMacHeader]: signer.sign(value) } : {}) } },
    }
  }
  const forgeries = {
    // A producer with Kafka credentials but no node's key.
    event_mac_missing: forge(owner, 1, undefined),
    // Another node's key vouching for an event that names the owner.
    event_mac_wrong_node: forge(owner, 2, otherSigner),
    // Another node's key, honestly naming that node: signed, but not the payment's node.
    event_node_not_owner: forge(otherKey.node, 3, otherSigner),
  }

  const dlq = await EventCollector.start((key) => key === id, stack.topics.dlq)
  t.teardown(() => dlq.close())
  const producer = createKafkaProducer({ ...kafkaEndpoint('admin'), clientId: 'forger', connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: pino({ level: 'silent' }) })
  t.teardown(() => producer.close())
  await producer.publish(stack.topics.events, Object.values(forgeries).map((f) => f.message), { timeoutMs: settleDeadlineMs })

  const forgedIds = new Set(Object.values(forgeries).map((f) => f.eventId))
  await dlq.waitFor(() => dlq.events.filter((e) => forgedIds.has(e.event.eventId)).length === forgedIds.size, settleDeadlineMs, 'the forgeries in the DLQ')
  for (const [reason, forgery] of Object.entries(forgeries)) {
    const letter = dlq.events.find((e) => e.event.eventId === forgery.eventId)!
    t.equal(letter.headers['dlq-reason'], reason, `${forgery.eventId} dead-lettered as ${reason}`)
  }

  // Dead-lettered means handled: a refused event is never written, so Postgres is final here.
  const { rows } = await db().query('SELECT status, version, psp_reference FROM payments WHERE checkout_id = $1', [id])
  t.same(rows[0], { status: before.status, version: before.version, psp_reference: before.psp_reference }, 'the payment did not move in Postgres')
  const recorded = await db().query('SELECT event_id FROM payment_events WHERE event_id = ANY($1)', [[...forgedIds]])
  t.same(recorded.rows, [], 'no forged event recorded')
  const node = await getInternal(stack.internalUrl, id)
  t.equal(node.body.status, 'requires_action', 'nor on its node')

  const refused = await refusedOnProcessors()
  for (const reason of Object.keys(forgeries)) t.ok((refused.get(reason) ?? 0) >= 1, `processors counted ${reason}`)
})

t.test('normal traffic still goes through', async (t) => {
  const id = await createWith('pm_card_visa', 'after-forgery')
  const node = await nodeReaches(id, settleDeadlineMs)
  t.equal(node.status, 'succeeded')
  const row = await postgresReaches(id, node.version, settleDeadlineMs)
  t.equal(row.status, 'succeeded', 'projected')
})

/** ringpay_processor_events_refused_total by reason, summed over the processors. */
async function refusedOnProcessors (): Promise<Map<string, number>> {
  const totals = new Map<string, number>()
  for (const p of stack.processors) {
    const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
    for (const match of text.matchAll(/^ringpay_processor_events_refused_total\{[^}]*reason="([a-z_]+)"[^}]*\} ([0-9.e+]+)$/gm)) {
      totals.set(match[1]!, (totals.get(match[1]!) ?? 0) + Number(match[2]))
    }
  }
  return totals
}
