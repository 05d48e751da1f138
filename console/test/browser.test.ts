// The console in a real browser (Debian's Chromium driven by playwright-core) against the real
// stack: sign in, search, open a timeline, resolve a flagged payment, replay a dead letter.
// Screenshots of each step go to .stack/console-screenshots/<run>/ (gitignored), or
// RINGPAY_CONSOLE_SCREENSHOTS_DIR. One browser for the file.
import t from 'tap'
import { X509Certificate, createHash } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { chromium, type Browser, type Page } from 'playwright-core'
import { createKafkaProducer, createKafkaTopicReader } from '../../lib/kafka-event-bus.ts'
import { dlqHeaders } from '../../processor/dead-letters.ts'
import { eventually, getInternal } from '../../test/helpers/api.ts'
import { closeDb, createWith, db } from '../../test/helpers/e2e.ts'
import { kafkaEndpoint, loadStackInfo } from '../../test/helpers/stack.ts'
import { adminDb, closeConsoleDb, consoleUrl, createOperator } from './helpers.ts'

const stack = loadStackInfo()
const chromiumPath = '/usr/bin/chromium'
const stepTimeoutMs = 15_000
const settleDeadlineMs = 30_000
const screenshotsDir = process.env.RINGPAY_CONSOLE_SCREENSHOTS_DIR ??
  join(import.meta.dirname, '..', '..', '.stack', 'console-screenshots', new Date().toISOString().replace(/[:.]/g, '-'))

/** The SPKI pin of the console listener's certificate: Chromium trusts that key, and no other bad certificate. */
function certificatePin (): string {
  const cert = new X509Certificate(readFileSync(stack.publicTls.certFile))
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
}

let browser: Browser
t.before(async () => {
  mkdirSync(screenshotsDir, { recursive: true })
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), `--ignore-certificate-errors-spki-list=${certificatePin()}`],
  })
})
t.teardown(async () => {
  await browser?.close()
  await closeConsoleDb()
  await closeDb()
})

async function shot (page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshotsDir, `${name}.png`), fullPage: true })
}

async function signedIn (role: 'operator'): Promise<{ page: Page, name: string }> {
  const op = await createOperator(role, 'browser')
  const context = await browser.newContext()
  const page = await context.newPage()
  page.setDefaultTimeout(stepTimeoutMs)
  // Every action that changes something asks first (data-confirm).
  page.on('dialog', (dialog) => { void dialog.accept() })
  await page.goto(`${consoleUrl()}/payments`)
  t.equal(new URL(page.url()).pathname, '/login', 'signed out: the sign-in page')
  await page.fill('input[name=name]', op.name)
  await page.fill('input[name=password]', op.password)
  await shot(page, '1-sign-in')
  await Promise.all([page.waitForURL('**/payments'), page.click('#login button[type=submit]')])
  return { page, name: op.name }
}

t.test('sign in, search, timeline, resolve a flagged payment', async (t) => {
  const id = await createWith('pm_card_requires_action', 'console')
  const merchant = 'merchant_demo' // createWith's
  const path = `/payments/${merchant}/${id}`
  // Waiting for the customer at the PSP, in Postgres too: then a person flags it (as the
  // processor would when the PSP disagreed).
  await eventually(async () => (await db().query("SELECT 1 FROM payments WHERE merchant_id = $1 AND checkout_id = $2 AND status = 'requires_action'", [merchant, id])).rowCount === 1 ? true : undefined,
    settleDeadlineMs, 'the payment at requires_action in Postgres')
  await adminDb().query("UPDATE payments SET flagged_reason = 'console test: the PSP disagreed' WHERE merchant_id = $1 AND checkout_id = $2", [merchant, id])

  const { page, name } = await signedIn('operator')
  t.match(await page.textContent('header'), `${name} (operator)`)
  await page.fill('#search input[name=checkout_id]', id)
  await Promise.all([page.waitForURL(`**/payments?checkout_id=${id}*`), page.click('#search button[type=submit]')])
  t.equal(await page.locator('#results tbody tr').count(), 1, 'one payment found')
  await shot(page, '2-search')

  await Promise.all([page.waitForURL(`**${path}`), page.click(`#results a[href="${path}"]`)])
  t.match(await page.textContent('#flag'), 'the PSP disagreed')
  const states = await page.textContent('#states')
  t.match(states, /Status\s*requires_action\s*requires_action\s*requires_action/, 'node, Postgres and PSP side by side')
  // The claim (processing) is not published: created, then requires_action.
  t.ok(await page.locator('#events tbody tr').count() >= 2, 'the change log')
  t.ok(await page.locator('#attempts tbody tr').count() >= 1, 'the PSP attempt')
  await shot(page, '3-timeline')

  await page.selectOption('#resolve select[name=action]', 'cancel')
  await page.fill('#resolve textarea[name=reason]', 'customer gave up; browser test')
  await Promise.all([page.waitForLoadState('load'), page.click('#resolve button[type=submit]')])
  t.match(await page.textContent('#notice', { timeout: stepTimeoutMs }), 'Resolved: applied: requires_action → canceled')
  await shot(page, '4-resolved')

  t.equal((await getInternal(stack.internalUrl, id)).body.status, 'canceled', 'the node moved it, through its transition path')
  const { rows } = await db().query('SELECT operator, action, reason, outcome FROM console_audit WHERE merchant_id = $1 AND checkout_id = $2', [merchant, id])
  t.match(rows, [{ operator: name, action: 'resolve.cancel', reason: 'customer gave up; browser test', outcome: /^applied/ }], 'audited: who, what, why, outcome')
  const pg = await eventually(async () => (await db().query("SELECT flagged_reason FROM payments WHERE merchant_id = $1 AND checkout_id = $2 AND status = 'canceled'", [merchant, id])).rows[0], settleDeadlineMs, 'Postgres to follow')
  t.equal(pg.flagged_reason, null, 'no longer flagged')
  await page.goto(`${consoleUrl()}/flagged`)
  t.equal(await page.locator(`#flagged a[href="${path}"]`).count(), 0, 'off the queue')
  await page.context().close()
})

t.test('replay a dead letter', async (t) => {
  // A dead letter of our own (the processor's headers, the merchant's among them), so the test
  // needs no failure to make one. Its key is a checkout id of merchant_demo's.
  const key = `console-dl-${Date.now()}-${process.pid}`
  const merchant = 'merchant_demo'
  const producer = createKafkaProducer({ ...kafkaEndpoint(), clientId: 'console-test', connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: pino({ level: 'silent' }) })
  try {
    await producer.publish(stack.topics.dlq, [{
      key,
      value: new Uint8Array([0xff, 0x01, 0x02]),
      headers: { [dlqHeaders.merchantId]: merchant, [dlqHeaders.reason]: 'console_test', [dlqHeaders.error]: 'made by the browser test', [dlqHeaders.failedAt]: new Date().toISOString(), [dlqHeaders.sourceTopic]: stack.topics.events, [dlqHeaders.sourcePartition]: '0', [dlqHeaders.sourceOffset]: '0' },
    }], { timeoutMs: 30_000 })
  } finally {
    await producer.close()
  }
  const { page, name } = await signedIn('operator')
  await page.goto(`${consoleUrl()}/dead-letters`)
  const row = page.locator('#dead-letters tbody tr', { hasText: key })
  t.equal(await row.count(), 1, 'listed')
  t.match(await row.textContent(), 'console_test')
  t.equal(await row.locator(`a[href="/payments/${merchant}/${key}"]`).count(), 1, 'linked to its merchant\'s payment')
  await shot(page, '5-dead-letters')
  await row.locator('input[name=reason]').fill('browser test replay')
  await Promise.all([page.waitForLoadState('load'), row.locator('button[type=submit]').click()])
  t.match(await page.textContent('#notice'), `replayed 1 dead letter(s) to the events topic (${key} (${merchant}),`)
  await shot(page, '6-replayed')
  const { rows } = await db().query("SELECT operator, reason, outcome FROM console_audit WHERE merchant_id = $1 AND checkout_id = $2 AND action = 'dead_letters.replay'", [merchant, key])
  t.match(rows, [{ operator: name, reason: 'browser test replay', outcome: /^replayed 1/ }])
  // Replayed to the events topic: the processor reads it again and, being poison, dead-letters it again.
  const reader = createKafkaTopicReader({ ...kafkaEndpoint(), clientId: 'console-test-reader', connectionTimeoutMs: 3_000, requestTimeoutMs: 30_000, log: pino({ level: 'silent' }) })
  await eventually(async () => {
    const letters = await reader.readToEnd(stack.topics.dlq, { messagesMax: 100_000, timeoutMs: 20_000 })
    return letters.some((l) => l.key === key && l.headers['replayed-from'] !== undefined) ? true : undefined
  }, settleDeadlineMs, 'the replayed event back in the DLQ')
  await page.context().close()
})
