// Health at a glance: what Prometheus (which the stack runs, scraping every component) says now,
// and the open payments by age from Postgres (payments_open_idx).

import { request } from 'undici'
import type { Session } from './auth.ts'
import type { ConsoleContext } from './context.ts'
import { html, page } from './html.ts'
import { consoleLimits as limits } from './limits.ts'

/** The dashboard's questions (ops/grafana/ringpay.json has the same expressions). */
export const healthQueries: ReadonlyArray<{ label: string, expr: string, unit: string }> = [
  { label: 'Payments accepted /s by outcome', expr: 'sum by (outcome) (rate(ringpay_payment_requests_total[1m]))', unit: '/s' },
  { label: 'Payments reaching a final status /s', expr: 'sum by (status) (rate(ringpay_payment_accepted_to_terminal_seconds_count[1m]))', unit: '/s' },
  { label: 'Relay lag (seconds) by node', expr: 'max by (instance) (ringpay_relay_lag_seconds)', unit: 's' },
  { label: 'Relay lag (events) by node', expr: 'max by (instance) (ringpay_relay_lag_events)', unit: 'events' },
  { label: 'Consumer lag (messages) by group', expr: 'sum by (group) (ringpay_consumer_lag_messages)', unit: 'messages' },
  { label: 'Oldest open payment (seconds) by processor', expr: 'max by (instance) (ringpay_oldest_open_payment_seconds)', unit: 's' },
  { label: 'PSP call latency p99 (seconds)', expr: 'histogram_quantile(0.99, sum by (le) (rate(ringpay_psp_call_duration_seconds_bucket[1m])))', unit: 's' },
  { label: 'PSP calls /s by outcome', expr: 'sum by (outcome) (rate(ringpay_psp_call_duration_seconds_count[1m]))', unit: '/s' },
  { label: 'Dead letters in the last 10 minutes', expr: 'sum(increase(ringpay_processor_dead_letters_total[10m]))', unit: '' },
  { label: 'Merchant notifications pending', expr: 'sum(ringpay_notifier_deliveries_pending)', unit: '' },
  { label: 'Alerts firing', expr: 'count by (alertname) (ALERTS{alertstate="firing"})', unit: '' },
]

interface Sample { labels: string, value: string }

async function query (url: string, expr: string): Promise<Sample[]> {
  const res = await request(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`, {
    headersTimeout: limits.prometheusQueryTimeoutMs, bodyTimeout: limits.prometheusQueryTimeoutMs,
  })
  const body = await res.body.json() as { status?: string, data?: { result?: Array<{ metric: Record<string, string>, value: [number, string] }> }, error?: string }
  if (res.statusCode !== 200 || body.status !== 'success') throw new Error(`prometheus answered ${res.statusCode}: ${body.error ?? ''}`)
  return (body.data?.result ?? []).map((r) => ({
    labels: Object.entries(r.metric).filter(([k]) => k !== '__name__').map(([k, v]) => `${k}=${v}`).join(', '),
    value: Number.isFinite(Number(r.value[1])) ? String(Math.round(Number(r.value[1]) * 1000) / 1000) : r.value[1],
  }))
}

/** Open (not final) payments by age since their last change. */
const openByAgeSql = `
SELECT CASE WHEN age < interval '1 minute' THEN '< 1 min'
            WHEN age < interval '10 minutes' THEN '1-10 min'
            WHEN age < interval '1 hour' THEN '10-60 min'
            ELSE '> 1 h' END AS bucket, status, count(*)::text AS n
  FROM (SELECT now() - updated_at AS age, status FROM payments WHERE status NOT IN ('succeeded', 'failed', 'canceled')) p
 GROUP BY 1, 2 ORDER BY min(age), status`

export async function healthPage (ctx: ConsoleContext, session: Session): Promise<string> {
  const results = await Promise.all(healthQueries.map(async (q): Promise<typeof q & ({ error: string } | { samples: Sample[] })> => {
    if (ctx.prometheusUrl === undefined) return { ...q, error: 'no Prometheus configured (PROMETHEUS_URL)' }
    try {
      return { ...q, samples: await query(ctx.prometheusUrl, q.expr) }
    } catch (error) {
      return { ...q, error: (error as Error).message }
    }
  }))
  const open = await ctx.pool.query<{ bucket: string, status: string, n: string }>(openByAgeSql)
  return page('Health', session, html`
<h2>Now (Prometheus)</h2>
<table id="metrics"><thead><tr><th>What</th><th>Series</th><th>Value</th></tr></thead><tbody>
${results.map((r) => 'error' in r
    ? html`<tr><td>${r.label}</td><td colspan="2" class="error">${r.error}</td></tr>`
    : r.samples.length === 0
        ? html`<tr><td>${r.label}</td><td colspan="2" class="muted">no data</td></tr>`
        : r.samples.map((s, i) => html`<tr><td>${i === 0 ? r.label : ''}</td><td>${s.labels || '—'}</td><td>${s.value} ${r.unit}</td></tr>`))}
</tbody></table>
<p class="muted">Consumer lag: messages of payments.events past each consumer group's latest fetch (processors, notifier), summed over partitions; 0 when it keeps up.</p>
<h2>Open payments by age (Postgres)</h2>
<table id="open-payments"><thead><tr><th>Since last change</th><th>Status</th><th>Payments</th></tr></thead><tbody>
${open.rows.map((r) => html`<tr><td>${r.bucket}</td><td>${r.status}</td><td>${r.n}</td></tr>`)}
</tbody></table>
${open.rows.length === 0 ? html`<p class="ok">No open payment.</p>` : ''}`)
}
