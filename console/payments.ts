// Payments: the search (checkout id, merchant, status, created between), keyset-paged newest
// first on (created_at, merchant_id, checkout_id) so page N costs what page 1 does on a million
// rows; and one payment's timeline, with the node's, Postgres' and the PSP's view side by side.
// A payment is its merchant's checkout id (issue #17 part 5): the same checkout id of two
// merchants is two payments, two rows in the search, two timelines (/payments/{merchant}/{checkout}).

import { paymentTraceIds } from '../lib/trace-id.ts'
import { readPaymentTrace, waterfall } from '../lib/trace-reader.ts'
import type { Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { ConsoleProblem } from './errors.ts'
import { csrfField, html, money, page, raw, when, type Raw } from './html.ts'
import { consoleLimits as limits } from './limits.ts'
import { mayDo } from './roles.ts'
import { paymentStatuses } from '../lib/payment-codec.ts'
import { isValidMerchantId, type PaymentId } from '../lib/payment-id.ts'
import { chargeRequestOf } from '../processor/charge-flow.ts'
import { NodeError, type NodePayment } from '../processor/node-client.ts'
import type { ChargeOutcome } from '../processor/psp/types.ts'

const checkoutIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const datePattern = /^\d{4}-\d{2}-\d{2}$/

/** Both ids well formed (a path naming anything else names no payment). */
export function isValidPaymentId (id: PaymentId): boolean {
  return isValidMerchantId(id.merchant_id) && checkoutIdPattern.test(id.checkout_id)
}

/** A payment's page in the console: it names the merchant and the checkout id. */
export function paymentPath (id: PaymentId): string {
  return `/payments/${encodeURIComponent(id.merchant_id)}/${encodeURIComponent(id.checkout_id)}`
}

/** A payment as operators read it: its checkout id and whose it is. */
export function paymentLabel (id: PaymentId): string {
  return `${id.checkout_id} (${id.merchant_id})`
}

export interface SearchFilters {
  checkoutId?: string
  merchantId?: string
  status?: string
  /** Created on or after this UTC day, and before the day after `to`. */
  from?: string
  to?: string
  /** The last row of the previous page: `<created_at text>|<merchant_id>|<checkout_id>`, base64url. */
  after?: string
}

export function filtersOf (query: URLSearchParams): SearchFilters {
  const get = (name: string): string | undefined => {
    const v = query.get(name)?.trim()
    return v === undefined || v === '' ? undefined : v
  }
  const f: SearchFilters = {}
  const checkoutId = get('checkout_id')
  const merchantId = get('merchant_id')
  const status = get('status')
  const from = get('from')
  const to = get('to')
  const after = get('after')
  if (checkoutId !== undefined) {
    if (!checkoutIdPattern.test(checkoutId)) throw new ConsoleProblem('validation_failed', 'a checkout id is 1-64 of A-Z a-z 0-9 _ -')
    f.checkoutId = checkoutId
  }
  if (merchantId !== undefined) {
    if (!isValidMerchantId(merchantId)) throw new ConsoleProblem('validation_failed', 'a merchant id is 1-64 of A-Z a-z 0-9 _ -')
    f.merchantId = merchantId
  }
  if (status !== undefined) {
    if (!(paymentStatuses as readonly string[]).includes(status)) throw new ConsoleProblem('validation_failed', `status is one of ${paymentStatuses.join(', ')}`)
    f.status = status
  }
  for (const [name, value] of [['from', from], ['to', to]] as const) {
    if (value === undefined) continue
    if (!datePattern.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) throw new ConsoleProblem('validation_failed', `${name} is a date YYYY-MM-DD`)
    f[name] = value
  }
  if (after !== undefined) f.after = after
  return f
}

/** A keyset cursor: a timestamp as Postgres prints it, then the payment (neither id holds a `|`). */
export function encodeCursor (at: string, id: PaymentId): string {
  return Buffer.from(`${at}|${id.merchant_id}|${id.checkout_id}`).toString('base64url')
}

export function decodeCursor (after: string): { at: string } & PaymentId {
  const parts = Buffer.from(after, 'base64url').toString('utf8').split('|')
  const [at, merchantId, checkoutId] = parts
  if (parts.length !== 3 || at === undefined || merchantId === undefined || checkoutId === undefined ||
    Number.isNaN(Date.parse(at)) || !isValidPaymentId({ merchant_id: merchantId, checkout_id: checkoutId })) {
    throw new ConsoleProblem('validation_failed', 'the page cursor is not valid')
  }
  return { at, merchant_id: merchantId, checkout_id: checkoutId }
}

export interface PaymentRow {
  checkout_id: string
  merchant_id: string
  status: string
  amount: string
  currency: string
  flagged_reason: string | null
  created_at: Date
  /** created_at as Postgres prints it (microseconds): the cursor, which a JS Date would round. */
  created_at_text: string
}

/**
 * One page of payments matching the filters, newest first, and the cursor of the next page. Each
 * filter combination is served by an index: merchant (merchant_id, created_at, checkout_id), status
 * (status, created_at, merchant_id, checkout_id), neither (created_at); a checkout id with its
 * merchant is the primary key, alone a few rows (one per merchant that used it).
 */
export async function searchPayments (ctx: Pick<ConsoleContext, 'pool'>, f: SearchFilters, pageSize: number = limits.searchPageSize): Promise<{ rows: PaymentRow[], next: string | undefined }> {
  const where: string[] = []
  const params: unknown[] = []
  const add = (sql: string, value: unknown): void => {
    params.push(value)
    where.push(sql.replace('?', `$${params.length}`))
  }
  if (f.checkoutId !== undefined) add('checkout_id = ?', f.checkoutId)
  if (f.merchantId !== undefined) add('merchant_id = ?', f.merchantId)
  if (f.status !== undefined) add('status = ?', f.status)
  if (f.from !== undefined) add('created_at >= ?::date', f.from)
  if (f.to !== undefined) add("created_at < ?::date + interval '1 day'", f.to)
  if (f.after !== undefined) {
    const c = decodeCursor(f.after)
    params.push(c.at, c.merchant_id, c.checkout_id)
    where.push(`(created_at, merchant_id, checkout_id) < ($${params.length - 2}::timestamptz, $${params.length - 1}, $${params.length})`)
  }
  params.push(pageSize + 1)
  const { rows } = await ctx.pool.query<PaymentRow>(
    `SELECT checkout_id, merchant_id, status, amount::text AS amount, currency, flagged_reason, created_at, created_at::text AS created_at_text
       FROM payments ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
      ORDER BY created_at DESC, merchant_id DESC, checkout_id DESC LIMIT $${params.length}`, params)
  const more = rows.length > pageSize
  const pageRows = rows.slice(0, pageSize)
  const last = pageRows[pageRows.length - 1]
  return { rows: pageRows, next: more && last !== undefined ? encodeCursor(last.created_at_text, last) : undefined }
}

function queryWith (f: SearchFilters, after: string): string {
  const q = new URLSearchParams()
  if (f.checkoutId) q.set('checkout_id', f.checkoutId)
  if (f.merchantId) q.set('merchant_id', f.merchantId)
  if (f.status) q.set('status', f.status)
  if (f.from) q.set('from', f.from)
  if (f.to) q.set('to', f.to)
  q.set('after', after)
  return q.toString()
}

export async function searchPage (ctx: ConsoleContext, session: Session, query: URLSearchParams): Promise<string> {
  const f = filtersOf(query)
  const { rows, next } = await searchPayments(ctx, f)
  const statusOptions = ['', ...paymentStatuses].map((s) => html`<option value="${s}"${raw(s === (f.status ?? '') ? ' selected' : '')}>${s === '' ? 'any' : s}</option>`)
  return page('Payments', session, html`
<form method="get" action="/payments" class="filters" id="search">
  <label>Checkout id <input name="checkout_id" value="${f.checkoutId ?? ''}"></label>
  <label>Merchant <input name="merchant_id" value="${f.merchantId ?? ''}"></label>
  <label>Status <select name="status">${statusOptions}</select></label>
  <label>Created from <input name="from" type="date" value="${f.from ?? ''}"></label>
  <label>to <input name="to" type="date" value="${f.to ?? ''}"></label>
  <button type="submit">Search</button>
</form>
<table id="results"><thead><tr><th>Checkout id</th><th>Merchant</th><th>Status</th><th>Amount</th><th>Created</th><th>Flag</th></tr></thead><tbody>
${rows.map((r) => html`<tr><td><a href="${paymentPath(r)}">${r.checkout_id}</a></td><td>${r.merchant_id}</td><td>${r.status}</td><td>${money(r.amount, r.currency)}</td><td>${when(r.created_at)}</td><td>${r.flagged_reason ?? ''}</td></tr>`)}
</tbody></table>
${rows.length === 0 ? html`<p class="muted">No payment matches.</p>` : ''}
${next === undefined ? '' : html`<p><a id="next-page" href="/payments?${queryWith(f, next)}">Next page</a></p>`}`)
}

interface PgPayment {
  checkout_id: string
  merchant_id: string
  node_id: string
  status: string
  version: string
  amount: string
  currency: string
  psp_reference: string | null
  failure_code: string | null
  flagged_reason: string | null
  created_at: Date
  updated_at: Date
  projected_at: Date
}

/** The three views of a payment's state; `differs` names the fields that do not agree. */
export interface StateComparison {
  node: { status?: string, version?: number, amount?: number, currency?: string, pspReference?: string, error?: string }
  postgres: { status?: string, version?: number, amount?: number, currency?: string, pspReference?: string }
  psp: { status?: string, pspReference?: string, note?: string, error?: string }
  differs: Set<string>
}

/** What a node status is expected to look like at the PSP (a claim is a charge in flight or pending there). */
function pspStatusOf (outcome: ChargeOutcome | undefined): string | undefined {
  if (outcome === undefined) return undefined
  return outcome.kind
}

export function compareStates (node: StateComparison['node'], postgres: StateComparison['postgres'], psp: StateComparison['psp']): Set<string> {
  const differs = new Set<string>()
  const same = (a: unknown, b: unknown) => a === undefined || b === undefined || a === b
  if (!same(node.status, postgres.status)) differs.add('status')
  if (!same(node.version, postgres.version)) differs.add('version')
  if (!same(node.amount, postgres.amount) || !same(node.currency, postgres.currency)) differs.add('amount')
  if (!same(node.pspReference, postgres.pspReference)) differs.add('psp_reference')
  if (psp.status !== undefined && node.status !== undefined) {
    // A payment still in flight may be pending at the PSP; a terminal one must say the same there.
    const terminal = ['succeeded', 'failed', 'canceled']
    const pspAgrees = psp.status === node.status ||
      (!terminal.includes(node.status) && (psp.status === 'pending' || psp.status === node.status))
    if (!pspAgrees) differs.add('psp_status')
    if (psp.pspReference !== undefined && node.pspReference !== undefined && node.pspReference !== '' && psp.pspReference !== node.pspReference) differs.add('psp_reference')
  }
  if (psp.status === 'flagged') differs.add('psp_status')
  return differs
}

/** The node's, Postgres' and the PSP's view of one payment. */
export async function statesOf (ctx: ConsoleContext, id: PaymentId, pgRow: PgPayment | undefined): Promise<{ comparison: StateComparison, nodePayment: NodePayment | undefined, pspOutcome: ChargeOutcome | undefined }> {
  let nodePayment: NodePayment | undefined
  const node: StateComparison['node'] = {}
  try {
    nodePayment = await ctx.node.get(id)
    if (nodePayment.merchant_id !== id.merchant_id || nodePayment.checkout_id !== id.checkout_id) {
      throw new Error(`the node answered for ${nodePayment.merchant_id}/${nodePayment.checkout_id} when asked for ${id.merchant_id}/${id.checkout_id}`)
    }
    Object.assign(node, { status: nodePayment.status, version: nodePayment.version, amount: nodePayment.amount, currency: nodePayment.currency, pspReference: nodePayment.psp_reference ?? '' })
  } catch (error) {
    if (!(error instanceof NodeError)) throw error
    node.error = error.code === 'payment_not_found' ? 'not on its node' : error.message
  }
  const postgres: StateComparison['postgres'] = pgRow === undefined
    ? {}
    : { status: pgRow.status, version: Number(pgRow.version), amount: Number(pgRow.amount), currency: pgRow.currency.trim(), pspReference: pgRow.psp_reference ?? '' }
  const psp: StateComparison['psp'] = {}
  let pspOutcome: ChargeOutcome | undefined
  if (nodePayment !== undefined) {
    try {
      pspOutcome = await ctx.psp.findCharge(chargeRequestOf(nodePayment))
      if (pspOutcome === undefined) psp.note = 'no charge at the PSP'
      else {
        psp.status = pspStatusOf(pspOutcome)
        psp.pspReference = pspOutcome.pspReference
        if (pspOutcome.kind === 'flagged') psp.note = pspOutcome.reason
      }
    } catch (error) {
      psp.error = (error as Error).message
    }
  }
  return { comparison: { node, postgres, psp, differs: compareStates(node, postgres, psp) }, nodePayment, pspOutcome }
}

function cell (differs: Set<string>, field: string, value: unknown): Raw {
  return html`<td class="${differs.has(field) ? 'diff' : ''}">${value ?? '—'}</td>`
}

export async function timelinePage (ctx: ConsoleContext, session: Session, id: PaymentId, notice?: Raw): Promise<string> {
  if (!isValidPaymentId(id)) throw new ConsoleProblem('not_found')
  // Every row below is the payment's: its merchant and its checkout id (another merchant's payment
  // with the same checkout id has its own timeline).
  const key = [id.merchant_id, id.checkout_id]
  const pgRow = (await ctx.pool.query<PgPayment>(
    `SELECT checkout_id, merchant_id, node_id, status, version::text, amount::text, currency, psp_reference, failure_code, flagged_reason, created_at, updated_at, projected_at
       FROM payments WHERE merchant_id = $1 AND checkout_id = $2`, key)).rows[0]
  const { comparison: c } = await statesOf(ctx, id, pgRow)
  if (pgRow === undefined && c.node.error !== undefined) throw new ConsoleProblem('not_found', `no payment ${paymentLabel(id)} in Postgres, and its node says: ${c.node.error}`)
  const n = limits.timelineRowsMax
  const [events, attempts, webhooks, deliveries, refunds, audit] = await Promise.all([
    ctx.pool.query('SELECT event_id, version, type, status, actor, occurred_at, recorded_at FROM payment_events WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY version LIMIT $3', [...key, n]),
    ctx.pool.query('SELECT attempt, provider, outcome, http_status, error_code, latency_ms, started_at FROM psp_attempts WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY started_at, id LIMIT $3', [...key, n]),
    ctx.pool.query('SELECT provider, psp_event_id, type, applied, received_at FROM webhooks WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY received_at LIMIT $3', [...key, n]),
    // A merchant event belongs to one merchant: its checkout id is that merchant's.
    ctx.pool.query(`SELECT e.type, e.version, d.endpoint_id, d.status, d.attempts, d.last_http_status, d.last_error, d.updated_at,
                           (SELECT max(a.latency_ms) FROM webhook_attempts a WHERE a.delivery_id = d.id) AS latency_ms_max
                      FROM merchant_events e JOIN webhook_deliveries d ON d.event_id = e.id
                     WHERE e.merchant_id = $1 AND e.checkout_id = $2 ORDER BY e.version, d.id LIMIT $3`, [...key, n]),
    ctx.pool.query('SELECT refund_id, amount::text, currency, status, reason, updated_at FROM refunds WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY created_at LIMIT $3', [...key, n]),
    ctx.pool.query('SELECT operator, action, reason, outcome, at FROM console_audit WHERE merchant_id = $1 AND checkout_id = $2 ORDER BY at LIMIT $3', [...key, n]),
  ])
  const d = c.differs
  const canResolve = pgRow?.flagged_reason !== null && pgRow?.flagged_reason !== undefined && mayDo(session.role, 'resolve_flagged')
  return page(`Payment ${paymentLabel(id)}`, session, html`
${notice ?? ''}
${pgRow?.flagged_reason ? html`<p class="error" id="flag">Flagged: ${pgRow.flagged_reason}</p>` : ''}
<h2>State</h2>
<table id="states"><thead><tr><th></th><th>Node${pgRow ? html` (${pgRow.node_id})` : ''}</th><th>Postgres</th><th>PSP</th></tr></thead><tbody>
<tr><th>Status</th>${cell(d, 'status', c.node.status ?? c.node.error)}${cell(d, 'status', c.postgres.status)}${cell(d, 'psp_status', c.psp.status ?? c.psp.error ?? c.psp.note)}</tr>
<tr><th>Version</th>${cell(d, 'version', c.node.version)}${cell(d, 'version', c.postgres.version)}<td>—</td></tr>
<tr><th>Amount</th>${cell(d, 'amount', c.node.amount === undefined ? undefined : money(c.node.amount, c.node.currency))}${cell(d, 'amount', c.postgres.amount === undefined ? undefined : money(c.postgres.amount, c.postgres.currency))}<td>—</td></tr>
<tr><th>Updated</th><td>—</td><td>${pgRow ? html`${when(pgRow.updated_at)} (projected ${when(pgRow.projected_at)})` : '—'}</td><td>—</td></tr>
<tr><th>PSP reference</th>${cell(d, 'psp_reference', c.node.pspReference)}${cell(d, 'psp_reference', c.postgres.pspReference)}${cell(d, 'psp_reference', c.psp.pspReference)}</tr>
</tbody></table>
${d.size === 0 ? html`<p class="ok" id="agree">The node, Postgres and the PSP agree.</p>` : html`<p class="error" id="differences">Differences: ${[...d].join(', ')}${c.psp.note ? ` (${c.psp.note})` : ''}</p>`}
${canResolve ? resolveForm(session, id) : ''}
<h2>Change log (payment_events)</h2>
<table id="events"><thead><tr><th>Version</th><th>Type</th><th>Status</th><th>Actor</th><th>Occurred</th><th>Event id</th></tr></thead><tbody>
${events.rows.map((e) => html`<tr><td>${e.version}</td><td>${e.type}</td><td>${e.status}</td><td>${e.actor}</td><td>${when(e.occurred_at)}</td><td>${e.event_id}</td></tr>`)}
</tbody></table>
<h2>PSP attempts</h2>
<table id="attempts"><thead><tr><th>#</th><th>Provider</th><th>Answer</th><th>HTTP</th><th>Error</th><th>Latency (ms)</th><th>Started</th></tr></thead><tbody>
${attempts.rows.map((a) => html`<tr><td>${a.attempt}</td><td>${a.provider}</td><td>${a.outcome}</td><td>${a.http_status ?? '—'}</td><td>${a.error_code ?? ''}</td><td>${a.latency_ms}</td><td>${when(a.started_at)}</td></tr>`)}
</tbody></table>
<h2>Webhooks received</h2>
<table id="webhooks"><thead><tr><th>Provider</th><th>Event</th><th>Type</th><th>Applied</th><th>Received</th></tr></thead><tbody>
${webhooks.rows.map((w) => html`<tr><td>${w.provider}</td><td>${w.psp_event_id}</td><td>${w.type}</td><td>${w.applied ? 'yes' : 'no'}</td><td>${when(w.received_at)}</td></tr>`)}
</tbody></table>
<h2>Merchant notifications</h2>
<table id="notifications"><thead><tr><th>Event</th><th>Version</th><th>Endpoint</th><th>Delivery</th><th>Attempts</th><th>Last HTTP</th><th>Slowest (ms)</th><th>Updated</th></tr></thead><tbody>
${deliveries.rows.map((w) => html`<tr><td>${w.type}</td><td>${w.version}</td><td>${w.endpoint_id}</td><td>${w.status}</td><td>${w.attempts}</td><td>${w.last_http_status ?? w.last_error ?? '—'}</td><td>${w.latency_ms_max ?? '—'}</td><td>${when(w.updated_at)}</td></tr>`)}
</tbody></table>
<h2>Refunds</h2>
<table id="refunds"><thead><tr><th>Refund</th><th>Amount</th><th>Status</th><th>Reason</th><th>Updated</th></tr></thead><tbody>
${refunds.rows.map((r) => html`<tr><td>${r.refund_id}</td><td>${money(r.amount, r.currency)}</td><td>${r.status}</td><td>${r.reason ?? ''}</td><td>${when(r.updated_at)}</td></tr>`)}
</tbody></table>
<h2>Operator actions</h2>
<table id="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Why</th><th>Outcome</th></tr></thead><tbody>
${audit.rows.map((a) => html`<tr><td>${when(a.at)}</td><td>${a.operator}</td><td>${a.action}</td><td>${a.reason}</td><td>${a.outcome}</td></tr>`)}
</tbody></table>
${ctx.tracesDir === undefined ? '' : await traceSection(ctx.tracesDir, id)}`)
}

/** Bar of a waterfall row, in text (the CSP allows no inline style). */
const traceBarWidth = 40

/** Issue #18: the payment's trace as a waterfall, when the stack writes traces (lib/trace-reader.ts). */
async function traceSection (dir: string, id: PaymentId): Promise<Raw> {
  let spans: Awaited<ReturnType<typeof readPaymentTrace>>
  try {
    spans = await readPaymentTrace(dir, id.merchant_id, id.checkout_id, limits.traceReadBytesMax)
  } catch (error) {
    return html`<h2>Trace</h2><p class="error">The trace files could not be read: ${(error as Error).message}</p>`
  }
  const rows = waterfall(spans)
  const totalMs = Math.max(...rows.map((r) => r.offsetMs + r.durationMs), 0.001)
  const ms = (value: number): string => value.toFixed(2)
  return html`<h2>Trace</h2>
<p class="muted">Trace ${paymentTraceIds(id.merchant_id, id.checkout_id).traceId}: ${rows.length} spans${spans.truncated === true ? ', from the newest trace files only (node scripts/trace.ts reads them all)' : ''}.</p>
<table id="trace"><thead><tr><th>Span</th><th>Service</th><th>Start (ms)</th><th>Duration (ms)</th><th></th></tr></thead><tbody>
${rows.map((r) => {
    const from = Math.floor(r.offsetMs / totalMs * traceBarWidth)
    const bar = '·'.repeat(from) + '█'.repeat(Math.max(1, Math.min(Math.round(r.durationMs / totalMs * traceBarWidth), traceBarWidth - from)))
    return html`<tr class="${r.span.error ? 'diff' : ''}"><td>${'\u00a0\u00a0'.repeat(r.depth)}${r.span.name}</td><td>${r.span.service}</td><td>${ms(r.offsetMs)}</td><td>${ms(r.durationMs)}</td><td><code>${bar}</code></td></tr>`
  })}
</tbody></table>`
}

export function resolveForm (session: Session, id: PaymentId): Raw {
  return html`
<form method="post" action="/flagged/${encodeURIComponent(id.merchant_id)}/${encodeURIComponent(id.checkout_id)}/resolve" id="resolve" data-confirm="Resolve this payment? The action is audited.">
  ${csrfField(session)}
  <label>Action <select name="action">
    <option value="accept_psp">Accept the PSP's state</option>
    <option value="cancel">Cancel</option>
    <option value="refund">Refund the charge (a canceled payment the PSP charged)</option>
  </select></label>
  <label>Why <textarea name="reason" required maxlength="${limits.reasonLengthMax}"></textarea></label>
  <button type="submit">Resolve</button>
</form>`
}
