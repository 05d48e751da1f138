// The end-to-end outcome check (the bench's e2e scenario and the fault suite run it after every
// run/fault): like a post-run reconciler over the ids a load generator sent, it proves the
// invariants the whole system is judged by.
//
// The ids are one merchant's checkout ids (`merchantId`): a payment is its merchant's checkout id
// (issue #17 part 5), and everything below reads and counts per (merchant, checkout id): the
// node's internal API names both, Postgres rows are filtered by both, and the PSP's charges are
// counted under the charge's idempotency key, which is derived from both.
//
// Ids come in three kinds, by what the client saw:
//   acked      202: the payment must exist on its owning node, and only there;
//   uncertain  no answer, or a 502/504 from nginx (a node killed mid-request can have fsynced
//              and died before answering): it may or may not exist; if it does, it is held to
//              everything an acked payment is;
//   refused    a 4xx, or a 503 problem answer from our node (shed before any write): it must
//              not exist anywhere.
//
// For every existing id it then waits (bounded by settleDeadlineMs) until Postgres shows it in
// a terminal state, and checks:
//   lost            acked but on no node;
//   duplicated      on more than one node, or not on the node nginx routes its key to;
//   refusedStored   refused but stored;
//   notTerminal     not terminal in Postgres by the deadline;
//   nodeVsPostgres  node and Postgres disagree on status or version;
//   nodeVsPsp       the node's terminal status is not the PSP's charge status (flagged payments
//                   are counted apart: "matches the PSP, or is flagged");
//   doubleCharges   more than one PSP charge under the payment's idempotency key (merchant and checkout id);
//   backwards       a version went down: in the node's change events (payment_events, by event
//                   sequence; a state change must raise it), in Postgres against the node, or
//                   between two polls of Postgres.
// And, for payments with refunds (issue #14; a payment is settled only once none of its refunds
// is pending in Postgres and Postgres has reached the node's version at the read-back):
//   refundsOverCaptured  pending plus succeeded refunds above the payment's amount (node or Postgres);
//   refundMismatches     a refund whose status differs between node, Postgres and the PSP (a failed
//                        refund may have no PSP refund: the PSP refused it), or missing from one;
//   doubleRefunds        more than one PSP refund under a refund's idempotency key.
// And, for manually captured payments (issue #14, capture_method manual, succeeded):
//   captureMismatches    captured more than authorized, or amount_captured differs between node,
//                        Postgres and the PSP's charge. Refunds of one are bounded by what was
//                        captured (refundsOverCaptured), not by the authorized amount.

import pg from 'pg'
import { Pool } from 'undici'
import { internalTokenHeader } from '../../lib/internal-credentials.ts'
import { chargeIdempotencyKey, refundIdempotencyKey } from '../../processor/psp/types.ts'

/** Ids read back at once (each read is one GET per node plus one through nginx). */
export const systemCheckConcurrency = 64
export const systemCheckConnectionsPerOrigin = 8
export const systemCheckRequestTimeoutMs = 10_000
/** Read-back attempts per id when a node does not answer 200/404 (e.g. still restarting). */
export const systemCheckReadAttemptsMax = 20
export const systemCheckReadRetryDelayMs = 250
/** Ids per Postgres query. */
export const systemCheckSqlChunkIds = 5_000
/** How often Postgres is polled while waiting for terminal states. */
export const systemCheckSettlePollIntervalMs = 250
export const systemCheckExamplesMax = 10
export const systemCheckPgConnectionsMax = 2

const terminalStatuses = new Set(['succeeded', 'failed', 'canceled'])

export interface SystemUnderCheck {
  nodes: ReadonlyArray<{ id: string, adminPort: number }>
  /** nginx's internal listener: routes a checkout id to its owning node, as processors do. */
  internalUrl: string
  /** The read-only `audit` service's internal API token (a stack info file's internalTokens). */
  internalTokens: { audit: string }
  databaseUrl: string
  psp: { url: string, secretKey: string }
  /** Issue #16: the second PSP, when the stack has one; charges are counted across both. */
  nimbus?: { url: string, apiKey: string }
  host?: string
}

export interface SystemOutcomeInput {
  system: SystemUnderCheck
  /** The merchant whose checkout ids acked, uncertain and refused are. */
  merchantId: string
  acked: readonly string[]
  uncertain?: readonly string[]
  refused?: readonly string[]
  /** Bound on the wait for terminal states in Postgres. */
  settleDeadlineMs: number
  onProgress?: (line: string) => void
}

export interface SystemOutcomeReport {
  acked: number
  uncertain: number
  /** Uncertain ids that turned out to be stored (held to the same checks as acked ones). */
  uncertainStored: number
  refused: number
  /** Payments checked end to end (acked + uncertainStored). */
  checked: number
  terminal: number
  lost: number
  duplicated: number
  refusedStored: number
  notTerminal: number
  nodeVsPostgres: number
  nodeVsPsp: number
  flagged: number
  doubleCharges: number
  backwards: number
  /** Refunds checked end to end (all payments' refunds on their nodes). */
  refunds: number
  refundsOverCaptured: number
  refundMismatches: number
  doubleRefunds: number
  /** Manually captured payments checked, and those whose captured amount disagrees or exceeds the authorization. */
  captures: number
  captureMismatches: number
  /** Reads that never got a clear answer (they fail the check: unknown is not fine). */
  checkErrors: number
  /** ms from the start of the check until every payment was terminal in Postgres. */
  settleMs: number
  statuses: Record<string, number>
  examples: Record<string, string[]>
  passed: boolean
}

interface NodeRefund { id: string, amount: number, status: string }
interface NodeRead {
  found: boolean
  status?: string
  version?: number
  nodeId?: string
  amount?: number
  refunds?: NodeRefund[]
  /** Manual capture: 'manual' and what was captured (the node's view carries both). */
  captureMethod?: string
  amountCaptured?: number
  /** Issue #16: the PSP the payment is recorded at. */
  pspProvider?: string
}

/** What a payment took, the bound of its refunds: a manual one what was captured. */
function capturedOf (node: NodeRead): number {
  return node.captureMethod === 'manual' ? node.amountCaptured ?? 0 : node.amount ?? 0
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function chunks<T> (items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

async function forEachBounded<T> (items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}

/** GET with bounded retries while the answer is neither 200 nor 404 (a restarting node). */
async function readPayment (pool: Pool, path: string, headers: Record<string, string>): Promise<NodeRead | undefined> {
  for (let attempt = 0; attempt < systemCheckReadAttemptsMax; attempt++) {
    try {
      const res = await pool.request({ method: 'GET', path, headers })
      const text = await res.body.text()
      if (res.statusCode === 404) return { found: false }
      if (res.statusCode === 200) {
        const body = JSON.parse(text) as { status: string, version: number, node_id?: string, amount: number, refunds?: NodeRefund[], capture_method?: string, amount_captured?: number, psp_provider?: string }
        return {
          found: true, status: body.status, version: body.version, amount: body.amount, refunds: body.refunds ?? [],
          ...(body.capture_method !== undefined ? { captureMethod: body.capture_method } : {}),
          ...(body.amount_captured !== undefined ? { amountCaptured: body.amount_captured } : {}),
          ...(body.node_id !== undefined ? { nodeId: body.node_id } : {}),
          ...(body.psp_provider !== undefined ? { pspProvider: body.psp_provider } : {}),
        }
      }
    } catch {
      // connection refused while a node restarts: retried below
    }
    await sleep(systemCheckReadRetryDelayMs)
  }
  return undefined
}

export async function checkSystemOutcome (input: SystemOutcomeInput): Promise<SystemOutcomeReport> {
  const startedAt = performance.now()
  const { system } = input
  const host = system.host ?? '127.0.0.1'
  const progress = input.onProgress ?? (() => {})
  const poolOptions = {
    connections: systemCheckConnectionsPerOrigin,
    headersTimeout: systemCheckRequestTimeoutMs,
    bodyTimeout: systemCheckRequestTimeoutMs,
  }
  const nodePools = system.nodes.map((n) => ({ id: n.id, pool: new Pool(`http://${host}:${n.adminPort}`, poolOptions) }))
  const internalPool = new Pool(system.internalUrl, poolOptions)
  const pspPool = new Pool(system.psp.url, poolOptions)
  // Issue #16: Nimbus' admin index (its engine's, the same shape as the sandbox's), under its own key.
  const nimbusPool = system.nimbus === undefined ? undefined : new Pool(system.nimbus.url, poolOptions)
  const adminAt = async (provider: 'sandbox' | 'nimbus', path: string): Promise<{ status: number, data: any[] }> => {
    const pool = provider === 'nimbus' ? nimbusPool! : pspPool
    const headers: Record<string, string> = provider === 'nimbus' ? { 'x-api-key': system.nimbus!.apiKey } : { authorization: `Bearer ${system.psp.secretKey}` }
    const res = await pool.request({ method: 'GET', path, headers })
    const text = await res.body.text()
    return { status: res.statusCode, data: res.statusCode === 200 ? (JSON.parse(text) as { data: any[] }).data : [] }
  }
  const providersChecked: Array<'sandbox' | 'nimbus'> = nimbusPool === undefined ? ['sandbox'] : ['sandbox', 'nimbus']
  const db = new pg.Pool({ connectionString: system.databaseUrl, max: systemCheckPgConnectionsMax })
  const examples: Record<string, string[]> = {}
  const counts = {
    lost: 0, duplicated: 0, refusedStored: 0, notTerminal: 0, nodeVsPostgres: 0, nodeVsPsp: 0,
    flagged: 0, doubleCharges: 0, backwards: 0, checkErrors: 0, uncertainStored: 0,
    refunds: 0, refundsOverCaptured: 0, refundMismatches: 0, doubleRefunds: 0, captures: 0, captureMismatches: 0,
  }
  const fail = (kind: keyof typeof counts, id: string, why: string): void => {
    counts[kind]++
    const list = (examples[kind] ??= [])
    if (list.length < systemCheckExamplesMax) list.push(`${id}: ${why}`)
  }
  const tokenHeader = { [internalTokenHeader]: system.internalTokens.audit }

  /** Which nodes hold the id, and whether the node its key routes to is one of them. */
  const { merchantId } = input
  const paymentPath = (id: string): string => `/internal/payments/${encodeURIComponent(merchantId)}/${encodeURIComponent(id)}`
  const locate = async (id: string): Promise<{ holders: string[], routed: NodeRead | undefined } | undefined> => {
    const path = paymentPath(id)
    const reads = await Promise.all(nodePools.map((n) => readPayment(n.pool, path, tokenHeader)))
    if (reads.includes(undefined)) return undefined
    const holders = nodePools.filter((_, i) => reads[i]!.found).map((n) => n.id)
    const routed = holders.length === 0 ? { found: false } : await readPayment(internalPool, path, { ...tokenHeader, 'x-payment-checkout-id': id })
    return { holders, routed }
  }

  try {
    // 1. Where is every id stored?
    const existing: string[] = []
    /** The owning node's version at the read-back: Postgres must reach it before the payment counts as settled. */
    const nodeVersionAtRead = new Map<string, number>()
    const classify = async (id: string, kind: 'acked' | 'uncertain' | 'refused'): Promise<void> => {
      const where = await locate(id)
      if (where === undefined || where.routed === undefined) return fail('checkErrors', id, 'a node did not answer the read-back')
      const { holders, routed } = where
      if (kind === 'refused') {
        if (holders.length > 0) fail('refusedStored', id, `refused but stored on ${holders.join(',')}`)
        return
      }
      if (holders.length === 0) {
        if (kind === 'acked') fail('lost', id, 'acknowledged, on no node')
        return
      }
      if (kind === 'uncertain') counts.uncertainStored++
      if (holders.length > 1 || !routed.found) {
        fail('duplicated', id, `stored on ${holders.join(',')}; the routed node ${routed.found ? 'has' : 'lacks'} it`)
      }
      if (routed.version !== undefined) nodeVersionAtRead.set(id, routed.version)
      existing.push(id)
    }
    const all: Array<[string, 'acked' | 'uncertain' | 'refused']> = [
      ...input.acked.map((id) => [id, 'acked'] as [string, 'acked']),
      ...(input.uncertain ?? []).map((id) => [id, 'uncertain'] as [string, 'uncertain']),
      ...(input.refused ?? []).map((id) => [id, 'refused'] as [string, 'refused']),
    ]
    const seen = new Set<string>()
    for (const [id] of all) {
      if (seen.has(id)) fail('duplicated', id, 'sent or acknowledged twice by the generator')
      seen.add(id)
    }
    progress(`read-back of ${all.length} ids on ${nodePools.length} nodes`)
    await forEachBounded(all, systemCheckConcurrency, ([id, kind]) => classify(id, kind))

    // 2. Wait until Postgres shows every existing payment terminal; no version may go down.
    const lastVersion = new Map<string, number>()
    const rows = new Map<string, { status: string, version: number, flagged: string | null, amountCaptured: number | null }>()
    const deadline = performance.now() + input.settleDeadlineMs
    let open = existing
    for (;;) {
      // A payment with a refund still pending in Postgres is not settled yet either. Read in the
      // same statement as the payment (one snapshot; the projection writes both in one): read
      // apart, a refund settling in between let a payment pass as settled at its older version.
      const refunding = new Set<string>()
      for (const part of chunks(open, systemCheckSqlChunkIds)) {
        const res = await db.query<{ checkout_id: string, status: string, version: string, flagged_reason: string | null, refunding: boolean, amount_captured: string | null }>(
          `SELECT checkout_id, status, version, flagged_reason, amount_captured,
                  EXISTS (SELECT 1 FROM refunds r WHERE r.merchant_id = p.merchant_id AND r.checkout_id = p.checkout_id AND r.status = 'pending') AS refunding
           FROM payments p WHERE merchant_id = $2 AND checkout_id = ANY($1)`, [part, merchantId])
        for (const r of res.rows) {
          const version = Number(r.version)
          const before = lastVersion.get(r.checkout_id)
          if (before !== undefined && version < before) fail('backwards', r.checkout_id, `Postgres version ${before} → ${version}`)
          lastVersion.set(r.checkout_id, version)
          rows.set(r.checkout_id, { status: r.status, version, flagged: r.flagged_reason, amountCaptured: r.amount_captured === null ? null : Number(r.amount_captured) })
          if (r.refunding) refunding.add(r.checkout_id)
        }
      }
      // Postgres behind the node's version at the read-back is not settled: a terminal payment
      // still changes when refunded, and its refund events may not be projected yet.
      open = open.filter((id) => !terminalStatuses.has(rows.get(id)?.status ?? '') || refunding.has(id) ||
        (rows.get(id)?.version ?? 0) < (nodeVersionAtRead.get(id) ?? 0))
      if (open.length === 0 || performance.now() > deadline) break
      progress(`${existing.length - open.length}/${existing.length} terminal in Postgres`)
      await sleep(systemCheckSettlePollIntervalMs)
    }
    const settleMs = performance.now() - startedAt
    for (const id of open) {
      const row = rows.get(id)
      fail('notTerminal', id, row === undefined ? 'Postgres: no row' : `Postgres: ${row.status} v${row.version} (node v${nodeVersionAtRead.get(id) ?? '?'} at the read-back)`)
    }

    // 3. Node, Postgres and PSP agree; at most one charge per key.
    const settled = existing.filter((id) => !open.includes(id))
    const statuses: Record<string, number> = {}
    progress(`comparing ${settled.length} payments on node, Postgres and PSP`)
    await forEachBounded(settled, systemCheckConcurrency, async (id) => {
      const row = rows.get(id)!
      statuses[row.status] = (statuses[row.status] ?? 0) + 1
      const node = await readPayment(internalPool, paymentPath(id), { ...tokenHeader, 'x-payment-checkout-id': id })
      if (node === undefined || !node.found) return fail('checkErrors', id, 'the owning node did not answer')
      if (node.status !== row.status || node.version !== row.version) {
        // A webhook recorded after the terminal state writes no new version; any difference is real.
        fail(node.version! < row.version ? 'backwards' : 'nodeVsPostgres', id, `node ${node.status} v${node.version}, Postgres ${row.status} v${row.version}`)
      }
      // Every PSP's charges under the key: one payment, one charge, whichever PSP took it (#16).
      const charges: Array<{ status: string, amount_captured?: number }> = []
      const chargedAt: string[] = []
      for (const provider of providersChecked) {
        const answer = await adminAt(provider, `/admin/charges?idempotency_key=${encodeURIComponent(chargeIdempotencyKey(merchantId, id))}`)
        if (answer.status !== 200) return fail('checkErrors', id, `${provider} admin answered ${answer.status}`)
        charges.push(...answer.data)
        for (const _ of answer.data) chargedAt.push(provider)
      }
      if (charges.length > 1) fail('doubleCharges', id, `${charges.length} charges (${chargedAt.join(', ')})`)
      if (chargedAt.length === 1 && node.pspProvider !== undefined && chargedAt[0] !== node.pspProvider) {
        fail('nodeVsPsp', id, `recorded at ${node.pspProvider}, charged at ${chargedAt[0]}`)
      }
      if (row.flagged !== null) {
        fail('flagged', id, row.flagged)
        return
      }
      const pspStatus = charges[0]?.status
      // A canceled payment whose charge the customer completed anyway is given back whole
      // (charge-flow.ts cancelAtPsp): canceled with a refund of the amount, never charged and canceled.
      const givenBack = node.status === 'canceled' && pspStatus === 'succeeded' &&
        (node.refunds ?? []).some((refund) => refund.status !== 'failed' && refund.amount === node.amount)
      const agrees = pspStatus === undefined ? node.status !== 'succeeded' : pspStatus === node.status || givenBack
      if (!agrees) fail('nodeVsPsp', id, `node ${node.status}, PSP ${pspStatus ?? 'no charge'}`)
      if (node.captureMethod === 'manual' && node.status === 'succeeded') {
        // Manual capture (issue #14): captured ≤ authorized; node = Postgres = PSP on what was captured.
        counts.captures++
        const captured = node.amountCaptured ?? 0
        const atPsp = charges[0]?.amount_captured
        if (captured <= 0 || captured > node.amount!) fail('captureMismatches', id, `node: captured ${captured} of ${node.amount} authorized`)
        if (row.amountCaptured !== captured) fail('captureMismatches', id, `node captured ${captured}, Postgres ${row.amountCaptured}`)
        if (atPsp !== captured) fail('captureMismatches', id, `node captured ${captured}, PSP ${atPsp ?? 'nothing'}`)
      }
      if (node.refunds !== undefined && node.refunds.length > 0) await checkRefunds(id, node)
    })

    /** Refunds (issue #14): within the amount, node = Postgres = PSP, one PSP refund per refund id. */
    async function checkRefunds (id: string, node: NodeRead): Promise<void> {
      const refunds = node.refunds!
      counts.refunds += refunds.length
      const committed = refunds.reduce((sum, r) => sum + (r.status === 'failed' ? 0 : r.amount), 0)
      const captured = capturedOf(node)
      if (committed > captured) fail('refundsOverCaptured', id, `node: refunds ${committed} > captured ${captured}`)
      const res = await db.query<{ refund_id: string, status: string, amount: string }>(
        'SELECT refund_id, status, amount FROM refunds WHERE merchant_id = $2 AND checkout_id = $1', [id, merchantId])
      const projected = new Map(res.rows.map((r) => [r.refund_id, r]))
      const projectedCommitted = res.rows.reduce((sum, r) => sum + (r.status === 'failed' ? 0 : Number(r.amount)), 0)
      if (projectedCommitted > captured) fail('refundsOverCaptured', id, `Postgres: refunds ${projectedCommitted} > captured ${captured}`)
      for (const row of res.rows) {
        if (!refunds.some((r) => r.id === row.refund_id)) fail('refundMismatches', id, `${row.refund_id}: in Postgres, not on the node`)
      }
      for (const refund of refunds) {
        const row = projected.get(refund.id)
        if (row === undefined || row.status !== refund.status || Number(row.amount) !== refund.amount) {
          fail('refundMismatches', id, `${refund.id}: node ${refund.status} ${refund.amount}, Postgres ${row?.status ?? 'no row'}`)
        }
        const provider = node.pspProvider === 'nimbus' && nimbusPool !== undefined ? 'nimbus' : 'sandbox'
        const answer = await adminAt(provider, `/admin/refunds?idempotency_key=${encodeURIComponent(refundIdempotencyKey(refund.id))}`)
        if (answer.status !== 200) return fail('checkErrors', id, `${provider} admin refunds answered ${answer.status}`)
        const atPsp = answer.data as Array<{ status: string, amount: number }>
        if (atPsp.length > 1) fail('doubleRefunds', id, `${refund.id}: ${atPsp.length} PSP refunds`)
        const psp = atPsp[0]
        const agrees = psp === undefined ? refund.status === 'failed' : psp.status === refund.status && psp.amount === refund.amount
        if (!agrees) fail('refundMismatches', id, `${refund.id}: node ${refund.status}, PSP ${psp?.status ?? 'no refund'}`)
      }
    }

    // 4. The change events, per payment and node in sequence order: a state change has a higher
    //    version than everything before it; a received webhook carries the payment's version as
    //    it was (equal), never a lower one.
    for (const part of chunks(settled, systemCheckSqlChunkIds)) {
      const res = await db.query<{ checkout_id: string, version: string, prev: string }>(`
        SELECT checkout_id, version, prev FROM (
          SELECT checkout_id, version, type,
                 lag(version) OVER (PARTITION BY checkout_id, split_part(event_id, ':', 1)
                                    ORDER BY split_part(event_id, ':', 2)::bigint) AS prev
          FROM payment_events WHERE merchant_id = $2 AND checkout_id = ANY($1)) e
        WHERE version < prev OR (version = prev AND type <> 'payment.webhook_received')`, [part, merchantId])
      for (const r of res.rows) fail('backwards', r.checkout_id, `change events: version ${r.prev} then ${r.version}`)
    }

    const report: SystemOutcomeReport = {
      acked: input.acked.length,
      uncertain: input.uncertain?.length ?? 0,
      uncertainStored: counts.uncertainStored,
      refused: input.refused?.length ?? 0,
      checked: existing.length,
      terminal: settled.length,
      lost: counts.lost,
      duplicated: counts.duplicated,
      refusedStored: counts.refusedStored,
      notTerminal: counts.notTerminal,
      nodeVsPostgres: counts.nodeVsPostgres,
      nodeVsPsp: counts.nodeVsPsp,
      flagged: counts.flagged,
      doubleCharges: counts.doubleCharges,
      backwards: counts.backwards,
      refunds: counts.refunds,
      refundsOverCaptured: counts.refundsOverCaptured,
      refundMismatches: counts.refundMismatches,
      doubleRefunds: counts.doubleRefunds,
      captures: counts.captures,
      captureMismatches: counts.captureMismatches,
      checkErrors: counts.checkErrors,
      settleMs: Math.round(settleMs),
      statuses,
      examples,
      passed: false,
    }
    report.passed = report.lost + report.duplicated + report.refusedStored + report.notTerminal + report.nodeVsPostgres +
      report.nodeVsPsp + report.doubleCharges + report.backwards + report.checkErrors +
      report.refundsOverCaptured + report.refundMismatches + report.doubleRefunds + report.captureMismatches === 0
    return report
  } finally {
    await Promise.all([...nodePools.map((n) => n.pool.destroy()), internalPool.destroy(), pspPool.destroy(), ...(nimbusPool ? [nimbusPool.destroy()] : []), db.end()].map((p) => p.catch(() => {})))
  }
}

/** One line per failed count, for logs and test messages. */
export function describeSystemOutcome (r: SystemOutcomeReport): string {
  const head = `${r.acked} acked, ${r.uncertainStored}/${r.uncertain} uncertain stored, ${r.refused} refused; ` +
    `${r.terminal}/${r.checked} terminal in ${(r.settleMs / 1000).toFixed(1)} s; ` +
    `lost ${r.lost}, duplicated ${r.duplicated}, refused-but-stored ${r.refusedStored}, not terminal ${r.notTerminal}, ` +
    `node≠Postgres ${r.nodeVsPostgres}, node≠PSP ${r.nodeVsPsp}, flagged ${r.flagged}, double charges ${r.doubleCharges}, ` +
    `backwards ${r.backwards}, unreadable ${r.checkErrors}` +
    (r.refunds > 0
      ? `; ${r.refunds} refunds: over the amount ${r.refundsOverCaptured}, node≠Postgres≠PSP ${r.refundMismatches}, double refunds ${r.doubleRefunds}`
      : '') +
    (r.captures > 0 ? `; ${r.captures} manual captures: captured > authorized or node≠Postgres≠PSP ${r.captureMismatches}` : '') +
    ` → ${r.passed ? 'PASS' : 'FAIL'}`
  const details = Object.entries(r.examples).map(([kind, list]) => `  ${kind}: ${list.join('; ')}`)
  return [head, ...details].join('\n')
}
