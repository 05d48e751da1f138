// Field key rotation on the running stack (issue #17 part 7): a new key is added to the stack's
// key ring and made active, processors and nodes restart with it; what the old key sealed still
// opens (API, processor, Postgres) and what is written afterwards is sealed with the new key.
// Restarts every processor and node (a faults/ test: run alone). The rotated ring stays: it
// holds the old key too, so the rest of the suite keeps working.

import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { KeyRing, sealedKeyId, sealedTextPrefix } from '../../lib/field-crypto.ts'
import { rotateFieldKeysFile } from '../../scripts/stack/field-keys.ts'
import { openPaymentMethodColumn } from '../../processor/sealed-columns.ts'
import { createPayment, getPayment, newCheckoutId } from '../helpers/api.ts'
import { closeDb, db, nodeReaches } from '../helpers/e2e.ts'
import { control, loadStackInfo } from '../helpers/stack.ts'
import { createEndpoint, notifierCall, pollUntil, WebhookReceiver } from '../helpers/webhooks.ts'

const stack = loadStackInfo()
t.teardown(closeDb)

async function settledPayment (customerRef: string): Promise<string> {
  const id = newCheckoutId('rot')
  const res = await createPayment(stack.publicUrl, stack.apiKeys.merchant_demo, id,
    { amount: 2500, currency: 'EUR', payment_method: 'pm_card_visa', customer_ref: customerRef })
  if (res.status !== 202) throw new Error(`create answered ${res.status}: ${res.text}`)
  const payment = await nodeReaches(id, 60_000)
  if (payment.status !== 'succeeded') throw new Error(`${id} ended ${payment.status}`)
  return id
}

/** The key id that sealed the payment's `payments.payment_method` in Postgres (once projected). */
async function postgresKeyId (id: string): Promise<{ keyId: string | undefined, stored: string }> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await db().query('SELECT payment_method FROM payments WHERE checkout_id = $1 AND status = $2', [id, 'succeeded'])
    if (rows[0] !== undefined) {
      const stored = rows[0].payment_method as string
      return { keyId: sealedKeyId(Buffer.from(stored.slice(sealedTextPrefix.length), 'base64url')), stored }
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${id} not projected`)
}

function nodeFilesHolding (needle: string): number {
  let count = 0
  for (const node of stack.nodes) {
    for (const name of readdirSync(node.dataDir)) {
      if (readFileSync(join(node.dataDir, name)).includes(needle)) count++
    }
  }
  return count
}

t.test('after a rotation old data still opens and new data uses the new key', async (t) => {
  const before = KeyRing.fromFile(stack.fieldKeysFile)
  const oldId = await settledPayment('cust-before-rotation')
  const old = await postgresKeyId(oldId)
  t.equal(old.keyId, before.activeKeyId, 'sealed with the active key before the rotation')

  // Rotate as an operator would (scripts/field-keys.ts rotate): keep the file's owner.
  const stat = statSync(stack.fieldKeysFile)
  const owner = process.getuid?.() === 0 ? { uid: stat.uid, gid: stat.gid } : null
  const newKeyId = `rot-${Date.now().toString(36)}`
  rotateFieldKeysFile(stack.fieldKeysFile, owner, newKeyId)
  t.equal(statSync(stack.fieldKeysFile).mode & 0o777, 0o600, 'still 0600')
  const after = KeyRing.fromFile(stack.fieldKeysFile)
  t.equal(after.activeKeyId, newKeyId)
  t.ok(after.has(before.activeKeyId), 'the old key stays in the ring')

  // Readers first (they must open what the nodes will seal with the new key), then writers. The
  // notifier is not restarted: it reads its key file again when it meets the new key (below).
  for (const processor of stack.processors) await control(`/services/${processor.id}/restart`)
  for (const node of stack.nodes) await control(`/nodes/${node.id}/restart`)
  const receiver = await WebhookReceiver.start()
  const endpoint = await createEndpoint(stack.publicUrl, stack.apiKeys.merchant_demo, receiver.url, ['payment.succeeded'])
  t.teardown(async () => {
    await notifierCall(stack.publicUrl, stack.apiKeys.merchant_demo, 'DELETE', `/webhook_endpoints/${endpoint.id}`)
    await receiver.close()
  })

  const view = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, oldId)
  t.equal(view.status, 200)
  t.equal(view.body.payment_method, 'pm_card_visa', 'a payment sealed with the old key reads after the rotation')
  t.equal(view.body.customer_ref, 'cust-before-rotation')
  t.equal(openPaymentMethodColumn(after, 'merchant_demo', oldId, old.stored), 'pm_card_visa', 'its Postgres value opens with the rotated ring')

  const newId = await settledPayment('cust-after-rotation')
  t.equal((await postgresKeyId(newId)).keyId, newKeyId, 'the processor seals with the new key')
  t.ok(nodeFilesHolding(`\x01${String.fromCharCode(newKeyId.length)}${newKeyId}`) > 0, 'the node sealed the new payment with the new key (its id heads the sealed value)')
  const newView = await getPayment(stack.publicUrl, stack.apiKeys.merchant_demo, newId)
  t.equal(newView.body.customer_ref, 'cust-after-rotation')
  // The notifier, started before the rotation, opens the new key's events: the merchant is told.
  const [hook] = await pollUntil(`payment.succeeded of ${newId}`, () => {
    const got = receiver.forCheckout(newId).filter((r) => r.body.type === 'payment.succeeded')
    return got.length > 0 ? got : undefined
  }, 60_000)
  t.equal(hook!.body.data.object.customer_ref, 'cust-after-rotation', 'the merchant event, made from an event sealed with the new key')
})
