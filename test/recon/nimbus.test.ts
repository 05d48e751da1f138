// Reconciliation per PSP (issue #16): a payment charged at Nimbus is matched in Nimbus' own
// settlement report (its format read into the reconciler's columns). (That a PSP's run counts
// only its own payments is the `psp_provider` filter of reconcile.ts and refunds.ts.) Runs today's date for Nimbus only: no other test reconciles Nimbus, and only this
// test's own payment is asserted on.

import t from 'tap'
import { createPool } from '../../reconciler/db.ts'
import { nimbusReportSource } from '../../reconciler/psp-source.ts'
import { reconcileDay } from '../../reconciler/reconcile.ts'
import { closeDb, createWith, nodeReaches, postgresReaches } from '../helpers/e2e.ts'
import { loadStackInfo } from '../helpers/stack.ts'

const stack = loadStackInfo()
const nimbus = stack.nimbus!
const deadlineMs = 30_000
const pool = createPool(stack.databaseUrls.reconciler)
const nimbusSource = nimbusReportSource(nimbus.url, nimbus.apiKey)
t.teardown(async () => { await Promise.allSettled([pool.end(), nimbusSource.close(), closeDb()]) })

t.test('a Nimbus payment is matched in Nimbus\' report', async (t) => {
  const id = await createWith('pm_card_visa', 'recon-nimbus', 4321, 'NOK')
  const node = await nodeReaches(id, deadlineMs)
  t.equal(node.psp_provider, 'nimbus')
  await postgresReaches(id, node.version, deadlineMs)
  const row = await pool.query<{ updated_at: Date }>('SELECT updated_at FROM payments WHERE checkout_id = $1', [id])
  const date = row.rows[0]!.updated_at.toISOString().slice(0, 10)
  const run = await reconcileDay({ pool, source: nimbusSource.source }, { psp: 'nimbus', date, trigger: 'test' })
  t.equal(run.psp, 'nimbus')
  const items = await pool.query<{ class: string, psp_reference: string }>('SELECT class, psp_reference FROM reconciliation_items WHERE run_id = $1 AND checkout_id = $2', [run.runId, id])
  t.same(items.rows.map((i) => [i.class, i.psp_reference]), [['matched', node.psp_reference]], 'one line, matched to the payment\'s charge')
})
