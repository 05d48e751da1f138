// The console's other pages on the real stack, without a browser: search paging, two merchants'
// payments with one checkout id, roles on the pages, reconciliation (rerun, run, CSV), health
// from Prometheus and Postgres, and the CLI.
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createPayment, eventually, newCheckoutId } from '../../test/helpers/api.ts'
import { closeDb, createWith, db, nodeReaches, postgresReaches } from '../../test/helpers/e2e.ts'
import { freshMerchantKey } from '../../test/helpers/merchants.ts'
import { loadStackInfo } from '../../test/helpers/stack.ts'
import { closeConsoleDb, ConsoleClient, consoleDb, createOperator, csrfOf, problemCodeOf } from './helpers.ts'
import { searchPayments } from '../payments.ts'

const stack = loadStackInfo()
t.teardown(closeConsoleDb)
t.teardown(closeDb)
const settleDeadlineMs = 30_000
/** Prometheus scrapes every 5 s; the lag gauges exist after a group's first fetch. */
const healthDeadlineMs = 30_000

async function signedIn (role: 'support' | 'operator' | 'finance'): Promise<ConsoleClient> {
  const op = await createOperator(role, 'pages')
  const c = new ConsoleClient()
  t.equal((await c.signIn(op.name, op.password)).status, 303)
  return c
}

t.test('search: keyset pages, newest first, none skipped or repeated', async (t) => {
  const { merchantId, key } = await freshMerchantKey(stack, 'pages')
  const ids: string[] = []
  for (let i = 0; i < 3; i++) {
    const id = newCheckoutId('paging')
    // The nodes take a new key within their reload interval (2 s): until then it is 401.
    await eventually(async () => (await createPayment(stack.publicUrl, key, id, { amount: 1999, currency: 'EUR', payment_method: 'pm_card_declined' })).status === 202 || undefined, settleDeadlineMs, `payment ${id} created`)
    ids.push(id)
  }
  // Postgres has them once the processor projected them: found by id.
  for (const id of ids) {
    await eventually(async () => (await searchPayments({ pool: consoleDb() }, { merchantId, checkoutId: id })).rows.length > 0 || undefined, settleDeadlineMs, `${id} in Postgres`)
  }
  const seen: string[] = []
  let after: string | undefined
  for (let page = 0; page < 10; page++) {
    const { rows, next } = await searchPayments({ pool: consoleDb() }, { merchantId, ...(after === undefined ? {} : { after }) }, 2)
    seen.push(...rows.map((r) => r.checkout_id))
    if (next === undefined) break
    after = next
  }
  t.same([...seen].sort(), [...ids].sort(), 'every payment of the merchant, on two pages of two')
  t.equal(new Set(seen).size, seen.length, 'no payment on two pages')
  for (const id of ids) t.ok(seen.includes(id), `${id} on some page`)
  t.ok(seen.indexOf(ids[2]!) < seen.indexOf(ids[0]!), 'newest first')
  const c = await signedIn('support')
  const page = await c.get(`/payments?merchant_id=merchant_demo&status=failed&from=2000-01-01`)
  t.equal(page.status, 200)
  const bad = await c.get('/payments?status=nope')
  t.equal(bad.status, 400)
  t.equal(problemCodeOf(bad.text), 'validation_failed')
})

/** The body rows of the table with this id on a page. */
function rowsOf (page: string, tableId: string): string[] {
  const table = new RegExp(`<table id="${tableId}">[\\s\\S]*?<tbody>([\\s\\S]*?)</tbody>`).exec(page)
  if (table === null) throw new Error(`no table ${tableId} on the page`)
  return table[1]!.match(/<tr>[\s\S]*?<\/tr>/g) ?? []
}

t.test('two merchants, one checkout id: two payments in the search, each timeline only its own', async (t) => {
  const id = newCheckoutId('console-two')
  const merchants = [{ id: 'merchant_demo', amount: 1999 }, { id: 'merchant_other', amount: 2500 }] as const
  for (const m of merchants) {
    const res = await createPayment(stack.publicUrl, stack.apiKeys[m.id]!, id, { amount: m.amount, currency: 'EUR', payment_method: 'pm_card_visa' })
    t.equal(res.status, 202, `${m.id} accepted`)
  }
  // Both final in Postgres, each with its PSP attempt recorded.
  for (const m of merchants) {
    const node = await nodeReaches(id, settleDeadlineMs, undefined, m.id)
    await postgresReaches(id, node.version, settleDeadlineMs, m.id)
    await eventually(async () => (await db().query('SELECT 1 FROM psp_attempts WHERE merchant_id = $1 AND checkout_id = $2', [m.id, id])).rowCount! > 0 ? true : undefined,
      settleDeadlineMs, `${m.id}'s PSP attempt in Postgres`)
  }
  const c = await signedIn('support')
  const search = await c.get(`/payments?checkout_id=${id}`)
  t.equal(search.status, 200)
  const results = rowsOf(search.text, 'results')
  t.equal(results.length, 2, 'two rows for one checkout id')
  for (const m of merchants) t.equal(results.filter((r) => r.includes(`href="/payments/${m.id}/${id}"`)).length, 1, `one row links to ${m.id}'s payment`)

  for (const [mine, theirs] of [[merchants[0], merchants[1]], [merchants[1], merchants[0]]] as const) {
    const page = await c.get(`/payments/${mine.id}/${id}`)
    t.equal(page.status, 200, `${mine.id}'s timeline`)
    t.match(rowsOf(page.text, 'states').join(''), new RegExp(`${mine.amount} EUR`), 'its own amount, on the node and in Postgres')
    t.notMatch(page.text, new RegExp(`${theirs.amount} EUR`), 'not the other payment\'s')
    const own = (await db().query('SELECT event_id FROM payment_events WHERE merchant_id = $1 AND checkout_id = $2', [mine.id, id])).rows.map((r) => r.event_id as string)
    const other = (await db().query('SELECT event_id FROM payment_events WHERE merchant_id = $1 AND checkout_id = $2', [theirs.id, id])).rows.map((r) => r.event_id as string)
    const events = rowsOf(page.text, 'events')
    t.ok(own.length > 0 && other.length > 0, 'both payments have events')
    t.equal(events.length, own.length, 'as many events as its own')
    // An event id is a whole cell (n3:4 is not n3:41).
    for (const e of own) t.ok(events.some((r) => r.includes(`<td>${e}</td>`)), `its event ${e}`)
    for (const e of other) t.notOk(page.text.includes(`<td>${e}</td>`), `not the other's event ${e}`)
    const attempts = (await db().query('SELECT count(*)::int AS n FROM psp_attempts WHERE merchant_id = $1 AND checkout_id = $2', [mine.id, id])).rows[0].n as number
    t.equal(rowsOf(page.text, 'attempts').length, attempts, 'its own PSP attempts only')
  }
  const bare = await c.get(`/payments/${id}`)
  t.equal(bare.status, 404, 'a checkout id alone names no payment')
  t.equal(problemCodeOf(bare.text), 'not_found')
})

t.test('support sees the pages without their actions', async (t) => {
  const c = await signedIn('support')
  for (const path of ['/flagged', '/dead-letters', '/reconciliation', '/health']) {
    const res = await c.get(path)
    t.equal(res.status, 200, path)
    t.notMatch(res.text, /id="(resolve|rerun|replay-all)"/, `${path}: no action form`)
  }
})

t.test('finance reruns a day; the run, its items and the CSV', async (t) => {
  const c = await signedIn('finance')
  const day = new Date().toISOString().slice(0, 10)
  const runs = await c.get('/reconciliation')
  const res = await c.post('/reconciliation/rerun', { _csrf: csrfOf(runs.text), date: day, reason: 'pages test' })
  t.equal(res.status, 200)
  // Another test may be reconciling the same day right now: the reconciler then answers 409.
  const notice = /id="notice">([^<]*)/.exec(res.text)?.[1] ?? ''
  t.match(notice, /^(reconciled \d{4}-\d{2}-\d{2}: sandbox run \d+, \d+ discrepancies, \d+ pending|refused \(409\))/)
  // The sandbox's current run of the day (another test's rerun may have replaced ours; Nimbus has
  // its runs too, issue #16). The list shows the latest days only, and other tests reconcile
  // days in the future: the run's own page is what is checked.
  const { rows: current } = await consoleDb().query("SELECT id::text FROM reconciliation_runs WHERE psp = 'sandbox' AND report_date = $1 AND is_current", [day])
  const run = current[0]?.id
  t.ok(run, 'the sandbox\'s run of the day')
  t.equal((await c.get(`/reconciliation/runs/${run}`)).status, 200)
  const csv = await c.get(`/reconciliation/runs/${run}/discrepancies.csv`)
  t.equal(csv.status, 200)
  t.match(csv.headers['content-type'], 'text/csv')
  t.match(csv.headers['content-disposition'], /attachment; filename="discrepancies-sandbox-\d{4}-\d{2}-\d{2}-run\d+\.csv"/)
  t.equal(csv.text.split('\n')[0], 'class,note,psp_line,psp_reference,checkout_id,merchant_id,psp_amount,internal_amount,psp_currency,internal_currency,psp_status,internal_status,day_offset')
  const { rows } = await consoleDb().query("SELECT outcome FROM console_audit WHERE action = 'reconciliation.rerun' AND reason = 'pages test' ORDER BY id DESC LIMIT 1")
  t.equal(rows[0]?.outcome, notice.replace(/&quot;/g, '"'), 'audited with its outcome')
})

t.test('health: Prometheus\' answers and open payments by age', async (t) => {
  const c = await signedIn('support')
  // A payment makes the processors and the notifier fetch, so both groups report their lag; it
  // shows once Prometheus has scraped them (every 5 s).
  const id = await createWith('pm_card_visa', 'health')
  await nodeReaches(id, settleDeadlineMs)
  const res = await eventually(async () => {
    const page = await c.get('/health')
    return /group=ringpay-processor/.test(page.text) && /group=ringpay-notifier/.test(page.text) ? page : undefined
  }, healthDeadlineMs, 'consumer lag of both groups on the health page')
  t.equal(res.status, 200)
  t.notMatch(res.text, /class="error"/, 'every Prometheus query answered')
  t.match(res.text, /instance=n1/, 'relay lag of node n1, scraped by the stack\'s Prometheus')
  t.match(res.text, /Consumer lag \(messages\) by group<\/td><td>group=ringpay-(processor|notifier)<\/td><td>\d+ messages/, 'consumer lag, a count per group')
  t.match(res.text, /id="open-payments"/)
})

t.test('a timeline shows the payment\'s trace as a waterfall when the stack writes traces', async (t) => {
  const c = await signedIn('support')
  const id = await createWith('pm_card_visa', 'timeline-trace')
  const node = await nodeReaches(id, settleDeadlineMs)
  await postgresReaches(id, node.version, settleDeadlineMs)
  const path = `/payments/merchant_demo/${id}`
  if (stack.tracesDir === undefined) {
    t.notMatch((await c.get(path)).text, /id="trace"/, 'no trace section without --tracing')
    return
  }
  // Each service (node, relay, processor) writes its spans on its own one-second timer: poll
  // until all three have written theirs, whichever came first.
  const acceptRow = /<tr class=""><td>POST \/payments<\/td><td>payment-svc<\/td><td>0\.00<\/td>/
  const publishRow = /send payments\.events<\/td><td>cdc-relay/
  const pspRow = /<td>(\u00a0)+psp charge<\/td><td>processor<\/td>/
  const res = await eventually(async () => {
    const page = await c.get(path)
    return [acceptRow, publishRow, pspRow].every((row) => row.test(page.text)) ? page : undefined
  }, healthDeadlineMs, `the trace of ${id} on its timeline`)
  t.match(res.text, /<table id="trace">/)
  t.ok(res.text.indexOf('<td>POST /payments</td>') < res.text.indexOf('psp charge</td>'), 'the accept comes before the PSP call')
  t.match(res.text, acceptRow, 'the accept is the first row, at 0 ms')
})

function cli (args: string[], stdin: string, env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'cli.ts'), ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}

t.test('the CLI creates an operator from a password on stdin, never on the command line', async (t) => {
  const name = `cli-${process.pid}-${Date.now()}`
  const env = { DATABASE_URL: stack.databaseUrls.console }
  const refused = await cli(['create-operator', '--name', name, '--role', 'operator', '--password', 'on the command line'], '', env)
  t.equal(refused.code, 2)
  t.match(refused.stderr, 'refused')
  const short = await cli(['create-operator', '--name', name, '--role', 'operator'], 'short\n', env)
  t.equal(short.code, 2, 'a password under the minimum length')
  const made = await cli(['create-operator', '--name', name, '--role', 'operator'], 'a long enough password\n', env)
  t.equal(made.code, 0, made.stderr)
  t.same(JSON.parse(made.stdout), { ok: true, command: 'create-operator', name, role: 'operator' })
  const again = await cli(['create-operator', '--name', name, '--role', 'operator'], 'a long enough password\n', env)
  t.equal(again.code, 1, 'an existing name is not overwritten')
  const c = new ConsoleClient()
  t.equal((await c.signIn(name, 'a long enough password')).status, 303, 'the operator signs in')
  const disabled = await cli(['disable', '--name', name], '', env)
  t.equal(disabled.code, 0)
  t.equal((await c.get('/payments')).status, 303, 'disabling ends the session')
})
