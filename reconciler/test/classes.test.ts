// The item classes in TypeScript and in Postgres agree, and which of them are discrepancies: a class
// added on one side only would fail every run that meets it (a CHECK violation) or be miscounted.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { discrepancyClasses, discrepancyCount, emptyCounts, itemClasses } from '../classes.ts'

t.test('the newest CHECK on reconciliation_items.class lists exactly the classes', (t) => {
  const sql = readFileSync(new URL('../../db/migrations/0007_refund_reconciliation.sql', import.meta.url), 'utf8')
  const check = /ADD CONSTRAINT reconciliation_items_class_check CHECK \(class IN \(([^)]*)\)\)/.exec(sql)
  t.ok(check, 'the migration replaces the CHECK')
  const inSql = [...check![1]!.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]).sort()
  t.same(inSql, [...itemClasses].sort())
  t.end()
})

t.test('refund classes are discrepancies; matched and pending_settlement (shared by both kinds) are not', (t) => {
  for (const c of itemClasses.filter((c) => c.startsWith('refund_'))) t.ok(discrepancyClasses.has(c), c)
  t.notOk(discrepancyClasses.has('matched'))
  t.notOk(discrepancyClasses.has('pending_settlement'))
  const counts = { ...emptyCounts(), matched: 5, pending_settlement: 2, refund_amount_mismatch: 1, refund_missing_at_psp: 2, amount_mismatch: 1 }
  t.equal(discrepancyCount(counts), 4)
  t.end()
})
