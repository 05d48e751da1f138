// The console's reconciliation list is keyset-paged, newest first: every current run is reachable,
// however many future-dated runs sit above today's (issue #18), and paging back returns the same
// pages. Runs of a PSP name of this test's own, so other tests' runs (made meanwhile) do not matter.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { decodeRunsCursor, encodeRunsCursor, listRuns, type RunsPage } from '../reconciliation.ts'
import { adminDb, closeConsoleDb, ConsoleClient, consoleDb, createOperator } from './helpers.ts'

t.teardown(closeConsoleDb)

const psp = `pagetest_${randomBytes(6).toString('hex')}`
// Seven future days (test runs dated ahead, as in the issue), and one in the past.
const days = ['2999-01-07', '2999-01-06', '2999-01-05', '2999-01-04', '2999-01-03', '2999-01-02', '2999-01-01', '2001-02-03']
const pageSize = 3

t.before(async () => {
  for (const day of days) {
    await adminDb().query(
      `INSERT INTO reconciliation_runs (psp, report_date, is_current, trigger, started_at, finished_at, duration_ms, psp_rows, internal_rows, counts, discrepancies, pending)
       VALUES ($1, $2, true, 'test', now(), now(), 0, 0, 0, '{}', 0, 0)`, [psp, day])
  }
})
t.teardown(async () => { await adminDb().query('DELETE FROM reconciliation_runs WHERE psp = $1', [psp]) })

const keyOf = (r: { report_date: string, psp: string }): string => `${r.report_date} ${r.psp}`

t.test('walking the older links reaches every run once, newest first; walking back gives the same pages', async (t) => {
  const ctx = { pool: consoleDb() }
  const forward: RunsPage[] = []
  let page = await listRuns(ctx, {}, pageSize)
  t.equal(page.newer, undefined, 'the first page has nothing newer')
  forward.push(page)
  // Bounded: the table holds far fewer runs than this in any test stack.
  for (let i = 0; page.older !== undefined && i < 10_000; i++) {
    page = await listRuns(ctx, { after: page.older }, pageSize)
    t.ok(page.newer !== undefined, 'a later page links back')
    forward.push(page)
  }
  t.equal(page.older, undefined, 'the walk ends')
  const all = forward.flatMap((p) => p.rows)
  t.ok(forward.every((p) => p.rows.length <= pageSize))
  t.equal(new Set(all.map(keyOf)).size, all.length, 'no run twice')
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1]!, all[i]!]
    // Days by text (ISO dates); PSPs of one day follow the database's collation, not checked here.
    if (a.report_date < b.report_date) t.fail(`out of order: ${keyOf(a)} then ${keyOf(b)}`)
  }
  t.same(all.filter((r) => r.psp === psp).map((r) => r.report_date), days, 'every run of ours, the past one too, newest first')
  const { rows: current } = await consoleDb().query('SELECT count(*)::int AS n FROM reconciliation_runs WHERE is_current')
  t.ok(all.length >= days.length && all.length <= current[0].n, 'the walk saw the current runs (others\' may be added meanwhile)')

  // Back from the last page with the newer links: the same pages, in reverse.
  let back = forward[forward.length - 1]!
  const backward = [back]
  for (let i = 0; back.newer !== undefined && i < 10_000; i++) {
    back = await listRuns(ctx, { before: back.newer }, pageSize)
    backward.push(back)
  }
  t.equal(back.newer, undefined, 'back at the newest page')
  const backRuns = backward.reverse().flatMap((p) => p.rows).map(keyOf)
  const ours = (keys: string[]): string[] => keys.filter((k) => k.endsWith(psp))
  t.same(ours(backRuns), ours(all.map(keyOf)), 'paging back lists the same runs in the same order')
})

t.test('cursors: round trip, and a forged one is a validation problem', async (t) => {
  t.same(decodeRunsCursor(encodeRunsCursor({ report_date: '2999-01-01', psp: 'a|b"c' })), { date: '2999-01-01', psp: 'a|b"c' })
  for (const bad of ['', 'not-base64-json', Buffer.from('["2999-13-x","p"]').toString('base64url'), Buffer.from('["2999-01-01",""]').toString('base64url')]) {
    t.throws(() => decodeRunsCursor(bad), { code: 'validation_failed' }, `refused: ${bad}`)
  }
  await t.rejects(listRuns({ pool: consoleDb() }, { after: encodeRunsCursor({ report_date: '2999-01-01', psp }), before: encodeRunsCursor({ report_date: '2999-01-01', psp }) }),
    { code: 'validation_failed' })
})

t.test('the page links through the console', async (t) => {
  const op = await createOperator('finance', 'recon-pages')
  const c = new ConsoleClient()
  t.equal((await c.signIn(op.name, op.password)).status, 303)
  // The page right after our newest run holds the next one, and links both ways.
  const res = await c.get(`/reconciliation?after=${encodeRunsCursor({ report_date: '2999-01-07', psp })}`)
  t.equal(res.status, 200)
  t.match(res.text, new RegExp(`<td>2999-01-06</td><td>${psp}</td>`), 'older runs after the cursor')
  t.notMatch(res.text, new RegExp(`<td>2999-01-07</td><td>${psp}</td>`), 'the cursor\'s own run is on the page before')
  t.match(res.text, /<a rel="prev" href="\/reconciliation\?before=[A-Za-z0-9_-]+">/)
  t.match(res.text, /<a href="\/reconciliation">Newest<\/a>/)
  const bad = await c.get('/reconciliation?after=bogus')
  t.equal(bad.status, 400)
})
