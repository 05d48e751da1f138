// Runs: a rerun replaces the date's result and keeps the old one as history; a malformed, truncated
// or headerless report is an error naming the line, and stores nothing; the CLI's exit codes and
// files; the stack's reconciler daemon serves its metrics.

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { addDays } from '../../reconciler/dates.ts'
import { ReconcileError } from '../../reconciler/errors.ts'
import { stringReportSource } from '../../reconciler/psp-source.ts'
import { reconcileDay } from '../../reconciler/reconcile.ts'
import {
  closeRecon, currentRun, dateSequence, generateCharges, insertPayments, itemsOf, oursFor, reconcile, reconcileOnce,
  reconPool, setDiscrepancies, stack, uniquePrefix,
} from './helpers.ts'

const dates = dateSequence(7, 'runs')
const cliTimeoutMs = 60_000
t.teardown(closeRecon)

async function runsOf (date: string): Promise<{ id: string, is_current: boolean, superseded_by: string | null }[]> {
  return (await reconPool().query("SELECT id, is_current, superseded_by FROM reconciliation_runs WHERE psp = 'sandbox' AND report_date = $1 ORDER BY id", [date])).rows
}

t.test('a rerun replaces the current result; the earlier run stays as history', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('rerun'))
  await insertPayments(oursFor(charges))
  const first = await reconcileOnce(date)
  t.equal(first.supersededRunId, null)
  await setDiscrepancies(date, { amountDelta: { [charges[0]!.reference]: -1 } })
  const second = await reconcileOnce(date)
  t.equal(second.supersededRunId, first.runId)
  t.equal(second.counts.amount_mismatch, 1)
  t.same(await runsOf(date), [
    { id: String(first.runId), is_current: false, superseded_by: String(second.runId) },
    { id: String(second.runId), is_current: true, superseded_by: null },
  ])
  t.equal((await itemsOf(first.runId)).length, 3, "the first run's items are kept")
  t.equal((await itemsOf(first.runId)).filter((i) => i.class === 'matched').length, 3)
})

t.test('a malformed line is an error naming its line; nothing is stored, the current result stays', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 4, uniquePrefix('malformed'))
  await insertPayments(oursFor(charges))
  const good = await reconcileOnce(date)
  await setDiscrepancies(date, { malformedRow: 2 })
  const error = await reconcileOnce(date).then(() => undefined, (e: unknown) => e)
  t.type(error, ReconcileError)
  t.match(error, { code: 'report_malformed', line: 3, message: /line 3: expected 13 columns, got 6/ })
  t.same((await runsOf(date)).map((r) => [r.id, r.is_current]), [[String(good.runId), true]], 'no run stored')
  const stray = await reconPool().query('SELECT count(*)::int AS n FROM reconciliation_items WHERE run_id > $1 AND checkout_id = ANY($2)',
    [good.runId, charges.map((c) => c.reference)])
  t.equal(stray.rows[0].n, 0, 'no items stored')
})

t.test('a truncated report (last line cut off) is an error naming the line; nothing is stored', async (t) => {
  const date = dates.next()
  const charges = await generateCharges(date, 4, uniquePrefix('truncated'))
  await insertPayments(oursFor(charges))
  await setDiscrepancies(date, { truncateAfterRows: 2 })
  await t.rejects(reconcileOnce(date), { code: 'report_truncated', line: 4, message: /line 4: the last line ends without a newline/ })
  t.same(await runsOf(date), [])
})

t.test('a report without its header, or empty, or with a non-integer amount, is refused with the line', async (t) => {
  const date = dates.next()
  const source = (text: string) => stringReportSource(() => text)
  const run = (text: string) => reconcileDay({ pool: reconPool(), source: source(text) }, { psp: 'sandbox', date, trigger: 'test' })
  await t.rejects(run(`${date},ch_1,co_1,m,100,EUR,26,74,succeeded,${date}T10:00:00Z\n`), { code: 'report_malformed', line: 1, message: /expected the header/ })
  await t.rejects(run(''), { code: 'report_truncated', line: 1, message: /empty/ })
  const header = 'settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference\n'
  await t.rejects(run(`${header}${date},ch_1,co_1,m,12.5,EUR,26,74,succeeded,${date}T10:00:00Z,charge,,\n`), { code: 'report_malformed', line: 2, message: /amount "12.5" is not an integer/ })
  t.same(await runsOf(date), [])
})

function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, '../../reconciler/cli.ts'), ...args], {
    env: { ...process.env, DATABASE_URL: stack.databaseUrls.reconciler, PSP_BASE_URL: stack.psp.url, PSP_SECRET_KEY: stack.psp.secretKey, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: cliTimeoutMs,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => { stdout += b })
  child.stderr.on('data', (b: Buffer) => { stderr += b })
  return once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }))
}

t.test('CLI: exit 0 clean, 1 discrepancies (with the CSV files), 2 bad arguments, malformed report, PSP or Postgres unreachable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'recon-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const clean = dates.next()
  const dirty = dates.next()
  const broken = dates.next()
  const cleanCharges = await generateCharges(clean, 2, uniquePrefix('cli-clean'))
  const dirtyCharges = await generateCharges(dirty, 2, uniquePrefix('cli-dirty'))
  await generateCharges(broken, 2, uniquePrefix('cli-broken'))
  await insertPayments(oursFor([...cleanCharges, ...dirtyCharges]))
  await setDiscrepancies(dirty, { amountDelta: { [dirtyCharges[0]!.reference]: 3 } })
  await setDiscrepancies(broken, { malformedRow: 1 })

  // Port 9 (discard) on loopback: nothing listens there, connections are refused at once.
  const [ok, found, bad, malformed, noPsp, noDb] = await Promise.all([
    cli(['--date', clean, '--out', join(dir, 'clean.csv'), '--json', '--quiet']),
    cli(['--date', dirty, '--out', join(dir, 'dirty.csv')]),
    cli(['--date', '2031-02-30']),
    cli(['--date', broken, '--out', join(dir, 'broken.csv'), '--quiet']),
    cli(['--date', broken, '--out', join(dir, 'no-psp.csv'), '--quiet'], { PSP_BASE_URL: 'http://127.0.0.1:9' }),
    cli(['--date', broken, '--out', join(dir, 'no-db.csv'), '--quiet'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:9/ringpay' }),
  ])
  t.equal(ok.code, 0, ok.stderr)
  const summary = JSON.parse(ok.stdout)
  t.match(summary, { exit_code: 0, discrepancies: 0, runs: [{ report_date: clean, psp_rows: 2, counts: { matched: 2 } }] })
  t.equal(readFileSync(join(dir, 'clean.csv'), 'utf8').split('\n')[0], 'report_date,psp,run_id,class,note,psp_line,psp_reference,checkout_id,psp_checkout_id,merchant_id,psp_amount,internal_amount,psp_currency,internal_currency,fee,net,psp_status,internal_status,psp_charged_at,internal_succeeded_at,line_type,refund_id,psp_charge')

  t.equal(found.code, 1, found.stderr)
  t.match(found.stdout, /amount_mismatch\s+1\s+\(discrepancy\)/)
  t.match(found.stdout, /Result: 1 discrepancies \(exit 1\)/)
  const rows = readFileSync(join(dir, 'dirty.csv'), 'utf8').trim().split('\n')
  t.equal(rows.length, 2, 'header + the one discrepancy (plain matches left out)')
  t.match(rows[1], new RegExp(`^${dirty},sandbox,\\d+,amount_mismatch,,[23],[^,]+,${dirtyCharges[0]!.reference},`))
  t.match(readFileSync(join(dir, 'dirty.totals.csv'), 'utf8'), new RegExp(`^period,psp,run_id,currency,psp_rows,psp_amount,psp_fee,psp_net,internal_rows,internal_amount\\n${dirty},sandbox,\\d+,EUR,2,`))

  t.equal(bad.code, 2)
  t.match(bad.stderr, /bad_args: --date "2031-02-30" is not a date/)
  t.equal(malformed.code, 2)
  t.match(malformed.stderr, /report_malformed: line 2: expected 13 columns, got 6/)
  t.equal(noPsp.code, 2)
  t.match(noPsp.stderr, /psp_unreachable: GET http:\/\/127\.0\.0\.1:9\/v1\/settlements\//)
  t.equal(noDb.code, 2)
  t.match(noDb.stderr, /db_unavailable: /)
  t.same(await runsOf(broken), [], 'nothing stored for the failed runs')
})

t.test('CLI --month: every day of the month, and the monthly totals', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'recon-month-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const month = `${dates.year}-11` // this file's own year (no other file's), whose other dates stay in July and August
  const first = await generateCharges(`${month}-10`, 2, uniquePrefix('month-a'))
  const second = await generateCharges(`${month}-20`, 1, uniquePrefix('month-b'))
  await insertPayments(oursFor([...first, ...second]))
  const res = await cli(['--month', month, '--out', join(dir, 'month.csv'), '--json', '--quiet'])
  t.equal(res.code, 0, res.stderr)
  const summary = JSON.parse(res.stdout)
  t.equal(summary.runs.length, 30)
  t.match(summary, { month, discrepancies: 0, counts: { matched: 3 }, totals: [{ currency: 'EUR', psp_rows: 3, internal_rows: 3 }] })
  const gross = [...first, ...second].reduce((s, c) => s + c.amount, 0)
  const totals = readFileSync(join(dir, 'month.totals.csv'), 'utf8').trim().split('\n')
  t.equal(totals.length, 1 + 2 + 1, 'header, two days with charges, the month')
  t.match(totals.at(-1), new RegExp(`^${month},sandbox,,EUR,3,${gross},\\d+,\\d+,3,${gross}$`))
})

t.test('the stack runs the reconciler daemon: a run on request, its counts on /metrics', { skip: stack.reconciler === undefined ? 'no reconciler in this stack' : false }, async (t) => {
  const admin = `http://127.0.0.1:${stack.reconciler!.adminPort}`
  const date = dates.next()
  const charges = await generateCharges(date, 3, uniquePrefix('daemon'))
  await insertPayments(oursFor(charges.slice(1)))
  await reconcile(addDays(date, -1))
  await reconcile(addDays(date, 1))
  const trigger = (authorization?: string): Promise<Response> => fetch(`${admin}/admin/reconcile?date=${date}`, {
    method: 'POST', headers: authorization === undefined ? {} : { authorization }, signal: AbortSignal.timeout(cliTimeoutMs),
  })
  // Issue #17 part 8: the trigger was open to any local process. Without the stack's token it
  // runs nothing.
  for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Bearer ${stack.reconciler!.adminToken}x`, stack.reconciler!.adminToken]) {
    const refused = await trigger(authorization)
    t.equal(refused.status, 401, `refused with ${authorization === undefined ? 'no' : 'a wrong'} Authorization`)
    t.match(await refused.json(), { error: { code: 'unauthorized' } })
  }
  t.equal(await currentRun(date), undefined, 'a refused trigger ran nothing')
  const res = await trigger(`Bearer ${stack.reconciler!.adminToken}`)
  t.equal(res.status, 200)
  const body = await res.json() as { runs: { runId: number, counts: Record<string, number> }[] }
  t.match(body.runs[0], { counts: { matched: 2, missing_internally: 1 } })
  t.equal((await currentRun(date))?.id, String(body.runs[0]!.runId))
  const metrics = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(cliTimeoutMs) })).text()
  t.match(metrics, /ringpay_reconciler_last_run_items\{psp="sandbox",class="missing_internally"\} 1/)
  t.match(metrics, /ringpay_reconciler_last_run_items\{psp="sandbox",class="matched"\} 2/)
  t.match(metrics, /ringpay_reconciler_last_run_duration_seconds\{psp="sandbox"\} \d/)
  t.match(metrics, /ringpay_reconciler_runs_total\{psp="sandbox",outcome="discrepancies"\} \d/)
})
