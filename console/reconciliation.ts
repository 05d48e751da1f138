// Reconciliation (reconciler/): current runs by day, a run's discrepancy items by class, the
// discrepancies as CSV, and a rerun of a day through the reconciler's own admin trigger (which
// replaces the day's current result; it alone writes reconciliation_*).

import type { ServerResponse } from 'node:http'
import { request } from 'undici'
import type { Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { ConsoleProblem } from './errors.ts'
import { audit } from './flagged.ts'
import { csrfField, html, page, when, type Raw } from './html.ts'
import { consoleLimits as limits } from './limits.ts'
import { mayDo } from './roles.ts'

const datePattern = /^\d{4}-\d{2}-\d{2}$/

/** A page of the runs list: newest first, keyset on (report_date, psp) of current runs, both descending. */
export interface RunRow {
  report_date: string
  psp: string
  [column: string]: any
}

export interface RunsPage {
  rows: RunRow[]
  /** Cursor of the page after this one (older runs), if any. */
  older: string | undefined
  /** Cursor of the page before this one (newer runs), if any. */
  newer: string | undefined
}

const pspNameLengthMax = 64

/** A keyset cursor: the run's day and PSP, as JSON in base64url (a PSP name may hold any character). */
export function encodeRunsCursor (row: { report_date: string, psp: string }): string {
  return Buffer.from(JSON.stringify([row.report_date, row.psp])).toString('base64url')
}

export function decodeRunsCursor (text: string): { date: string, psp: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    parsed = undefined
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || !datePattern.test(parsed[0]) ||
    typeof parsed[1] !== 'string' || parsed[1].length === 0 || parsed[1].length > pspNameLengthMax) {
    throw new ConsoleProblem('validation_failed', 'the page cursor is not valid')
  }
  return { date: parsed[0], psp: parsed[1] }
}

const runColumns = 'id, psp, report_date::text AS report_date, trigger, finished_at, duration_ms, psp_rows, internal_rows, counts, discrepancies, pending'

/**
 * One page of current runs, newest day first (PSPs of a day in reverse name order), every run
 * reachable however many days there are (future-dated test runs included): `after` pages to older
 * runs, `before` to newer ones. The rows are few (one current run per PSP and day, ~730 a year
 * for two PSPs), so a page's sort over them is cheap without an index of its own.
 */
export async function listRuns (ctx: Pick<ConsoleContext, 'pool'>, page: { after?: string | undefined, before?: string | undefined },
  pageSize: number = limits.reconciliationRunsPageSize): Promise<RunsPage> {
  if (page.after !== undefined && page.before !== undefined) throw new ConsoleProblem('validation_failed', 'page with after or before, not both')
  if (page.before !== undefined) {
    const c = decodeRunsCursor(page.before)
    const { rows } = await ctx.pool.query<RunRow>(
      `SELECT ${runColumns} FROM reconciliation_runs WHERE is_current AND (report_date, psp) > ($1::date, $2)
        ORDER BY report_date ASC, psp ASC LIMIT $3`, [c.date, c.psp, pageSize + 1])
    const more = rows.length > pageSize
    const pageRows = rows.slice(0, pageSize).reverse()
    const last = pageRows[pageRows.length - 1]
    return {
      rows: pageRows,
      newer: more ? encodeRunsCursor(pageRows[0]!) : undefined,
      // The cursor's own run, at least, is older than this page: the next page starts after this page's last run.
      older: encodeRunsCursor(last ?? { report_date: c.date, psp: c.psp }),
    }
  }
  const c = page.after === undefined ? undefined : decodeRunsCursor(page.after)
  const { rows } = c === undefined
    ? await ctx.pool.query<RunRow>(`SELECT ${runColumns} FROM reconciliation_runs WHERE is_current ORDER BY report_date DESC, psp DESC LIMIT $1`, [pageSize + 1])
    : await ctx.pool.query<RunRow>(
      `SELECT ${runColumns} FROM reconciliation_runs WHERE is_current AND (report_date, psp) < ($1::date, $2)
        ORDER BY report_date DESC, psp DESC LIMIT $3`, [c.date, c.psp, pageSize + 1])
  const pageRows = rows.slice(0, pageSize)
  return {
    rows: pageRows,
    older: rows.length > pageSize ? encodeRunsCursor(pageRows[pageRows.length - 1]!) : undefined,
    // The cursor's own run, at least, is newer than this page: that page ends before this one's first run.
    newer: c === undefined ? undefined : encodeRunsCursor(pageRows[0] ?? { report_date: c.date, psp: c.psp }),
  }
}

export async function runsPage (ctx: ConsoleContext, session: Session, query?: URLSearchParams, notice?: Raw): Promise<string> {
  const { rows, older, newer } = await listRuns(ctx, { after: query?.get('after') ?? undefined, before: query?.get('before') ?? undefined })
  return page('Reconciliation', session, html`
${notice ?? ''}
${mayDo(session.role, 'rerun_reconciliation') ? html`<form method="post" action="/reconciliation/rerun" id="rerun" data-confirm="Reconcile this day again? It replaces the day's current result.">${csrfField(session)}
<label>Day <input name="date" type="date" required></label> <label>Why <input name="reason" required maxlength="${limits.reasonLengthMax}"></label> <button type="submit">Rerun</button></form>` : ''}
<table id="runs"><thead><tr><th>Day</th><th>PSP</th><th>Run</th><th>Trigger</th><th>Finished</th><th>PSP rows</th><th>Our rows</th><th>Discrepancies</th><th>Pending</th><th>By class</th><th></th></tr></thead><tbody>
${rows.map((r) => html`<tr><td>${r.report_date}</td><td>${r.psp}</td><td><a href="/reconciliation/runs/${r.id}">${r.id}</a></td><td>${r.trigger}</td><td>${when(r.finished_at)}</td><td>${r.psp_rows}</td><td>${r.internal_rows}</td>
<td class="${Number(r.discrepancies) > 0 ? 'diff' : ''}">${r.discrepancies}</td><td>${r.pending}</td><td>${Object.entries(r.counts as Record<string, number>).filter(([, v]) => v > 0).map(([k, v]) => `${k}: ${v}`).join(', ')}</td>
<td><a href="/reconciliation/runs/${r.id}/discrepancies.csv">CSV</a></td></tr>`)}
</tbody></table>
${rows.length === 0 ? html`<p class="muted">No run${newer !== undefined ? ' on this page' : ' yet'}.</p>` : ''}
<nav class="pages" id="runs-pages">${newer !== undefined ? html`<a href="/reconciliation">Newest</a> <a rel="prev" href="/reconciliation?before=${newer}">← Newer</a>` : ''}
${older !== undefined ? html`<a rel="next" href="/reconciliation?after=${older}">Older →</a>` : ''}</nav>`)
}

const itemColumns = ['class', 'note', 'psp_line', 'psp_reference', 'checkout_id', 'merchant_id', 'psp_amount', 'internal_amount', 'psp_currency', 'internal_currency', 'psp_status', 'internal_status', 'day_offset'] as const

function runIdOf (text: string): number {
  const id = Number(text)
  if (!Number.isSafeInteger(id) || id < 1) throw new ConsoleProblem('not_found')
  return id
}

export async function runPage (ctx: ConsoleContext, session: Session, runIdText: string): Promise<string> {
  const runId = runIdOf(runIdText)
  const run = (await ctx.pool.query('SELECT id, psp, report_date::text AS report_date, is_current, counts FROM reconciliation_runs WHERE id = $1', [runId])).rows[0]
  if (run === undefined) throw new ConsoleProblem('not_found')
  // The first items of each class but `matched` (a window per class; run_id is BRIN-indexed).
  const { rows } = await ctx.pool.query(
    `SELECT * FROM (SELECT ${itemColumns.join(', ')}, row_number() OVER (PARTITION BY class ORDER BY psp_line NULLS LAST, merchant_id, checkout_id) AS n
       FROM reconciliation_items WHERE run_id = $1 AND class <> 'matched') i WHERE n <= $2 ORDER BY class, n`, [runId, limits.reconciliationItemsPerClassMax])
  const byClass = new Map<string, typeof rows>()
  for (const r of rows) byClass.set(r.class, [...(byClass.get(r.class) ?? []), r])
  return page(`Reconciliation run ${runId} (${run.psp}, ${run.report_date})`, session, html`
<p>${run.is_current ? 'The current run of the day.' : 'Superseded by a later run of the day.'} <a href="/reconciliation/runs/${runId}/discrepancies.csv">All discrepancies as CSV</a></p>
${[...byClass].map(([cls, items]) => html`<h2>${cls} (${(run.counts as Record<string, number>)[cls] ?? items.length})</h2>
<table class="items"><thead><tr>${itemColumns.slice(1).map((c) => html`<th>${c}</th>`)}</tr></thead><tbody>
${items.map((i) => html`<tr>${itemColumns.slice(1).map((c) => html`<td>${i[c] ?? ''}</td>`)}</tr>`)}
</tbody></table>`)}
${byClass.size === 0 ? html`<p class="ok">No discrepancy.</p>` : ''}`)
}

function csvField (value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value)
  // A spreadsheet runs a cell starting with = + - @ as a formula: prefixed with '.
  const defused = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text
  return /[",\n\r]/.test(defused) ? `"${defused.replace(/"/g, '""')}"` : defused
}

/** Streams a run's discrepancy items as CSV, in pages (keyset on psp_line, checkout_id would need an index; a cursor is simpler). */
export async function discrepanciesCsv (ctx: ConsoleContext, res: ServerResponse, runIdText: string): Promise<void> {
  const runId = runIdOf(runIdText)
  const run = (await ctx.pool.query('SELECT report_date::text AS report_date, psp FROM reconciliation_runs WHERE id = $1', [runId])).rows[0]
  if (run === undefined) throw new ConsoleProblem('not_found')
  const client = await ctx.pool.connect()
  try {
    await client.query('BEGIN READ ONLY')
    await client.query(`DECLARE items NO SCROLL CURSOR FOR SELECT ${itemColumns.join(', ')} FROM reconciliation_items
      WHERE run_id = $1 AND class <> 'matched' ORDER BY class, psp_line NULLS LAST, merchant_id, checkout_id LIMIT ${limits.reconciliationCsvRowsMax}`, [runId])
    res.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': `attachment; filename="discrepancies-${run.psp}-${run.report_date}-run${runId}.csv"`,
    })
    res.write(itemColumns.join(',') + '\n')
    for (;;) {
      const { rows } = await client.query('FETCH 1000 FROM items')
      if (rows.length === 0) break
      const chunk = rows.map((r) => itemColumns.map((c) => csvField(r[c])).join(',')).join('\n') + '\n'
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
    }
    await client.query('COMMIT')
    res.end()
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    client.release()
  }
}

export async function rerun (ctx: ConsoleContext, session: Session, date: string, reason: string): Promise<Raw> {
  if (!datePattern.test(date)) throw new ConsoleProblem('validation_failed', 'the day is YYYY-MM-DD')
  if (ctx.reconciler === undefined) throw new ConsoleProblem('upstream_failed', 'no reconciler is configured (RECONCILER_URL)')
  let status: number
  let body: any
  try {
    const res = await request(`${ctx.reconciler.url}/admin/reconcile?date=${date}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ctx.reconciler.token}` },
      headersTimeout: limits.reconcilerRerunTimeoutMs,
      bodyTimeout: limits.reconcilerRerunTimeoutMs,
    })
    status = res.statusCode
    body = await res.body.json().catch(() => undefined)
  } catch (error) {
    await audit(ctx, session.operator, 'reconciliation.rerun', null, reason, `failed: ${(error as Error).message}`, { date })
    throw new ConsoleProblem('upstream_failed', 'the reconciler did not answer', { cause: error })
  }
  const runs: Array<{ runId?: number, psp?: string, discrepancies?: number, pending?: number }> = Array.isArray(body?.runs) ? body.runs : []
  const outcome = status === 200
    ? `reconciled ${date}: ${runs.map((r) => `${r.psp ?? '?'} run ${r.runId ?? '?'}, ${r.discrepancies ?? '?'} discrepancies, ${r.pending ?? '?'} pending`).join('; ') || 'no run'}` : `refused (${status}): ${body?.error?.code ?? ''} ${body?.error?.message ?? ''}`
  await audit(ctx, session.operator, 'reconciliation.rerun', null, reason, outcome, { date, status })
  return status === 200 ? html`<p class="ok" id="notice">${outcome}</p>` : html`<p class="error" id="notice">${outcome}</p>`
}
