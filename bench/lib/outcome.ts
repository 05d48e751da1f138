// The outcome check: every checkout id the load generator saw acknowledged (202) must exist, once.
// For the payment nodes, each checked id is read back on EVERY node's admin port
// (`GET /internal/payments/<merchant>/<id>` with a read-only internal token; the load is one
// merchant's, whose checkout ids these are): found on none = lost, found on more
// than one = duplicated (a routing fault would put one id on two nodes). An id the generator saw
// acknowledged twice also counts as duplicated. Above `sampleMax` distinct ids a uniform random
// sample of that size is checked, and the report says so.

import { Pool } from 'undici'
import { internalTokenHeader } from '../../lib/internal-credentials.ts'

/** Ids being checked at once (each is one GET per node). */
export const outcomeCheckConcurrency = 128
/** Keep-alive connections per node for the read-back. */
export const outcomeCheckConnectionsPerNode = 8
/** Requests pipelined per connection. */
export const outcomeCheckPipelining = 8
/** Per read-back request. */
export const outcomeCheckRequestTimeoutMs = 10_000
/** The whole read-back; past it the check fails. */
export const outcomeCheckTimeoutMs = 600_000
export const outcomeCheckProgressIntervalMs = 2_000
/** Lost or duplicated ids listed in the report, at most. */
export const outcomeExamplesMax = 20

export interface OutcomeReport {
  target: string
  /** 202 answers the generator recorded. */
  acked: number
  distinct: number
  checked: number
  /** True when `checked` < `distinct` (a uniform random sample). */
  sampled: boolean
  lost: number
  duplicated: number
  /** Read-backs that answered neither 200 nor 404 (they fail the check: the outcome is unknown). */
  checkErrors: number
  foundPerNode: Record<string, number>
  examples: { lost: string[], duplicated: string[] }
  method: string
  durationS: number
  passed: boolean
}

export interface NodeAdmin {
  id: string
  adminOrigin: string
}

/** Distinct ids, and how many ids were acknowledged more than once. */
export function distinctIds (ids: readonly string[]): { distinct: string[], repeated: string[] } {
  const seen = new Set<string>()
  const repeated: string[] = []
  for (const id of ids) {
    if (seen.has(id)) repeated.push(id)
    else seen.add(id)
  }
  return { distinct: [...seen], repeated }
}

/** Uniform random sample without replacement (partial Fisher–Yates on a copy). */
export function sample<T> (items: readonly T[], size: number): T[] {
  if (size >= items.length) return [...items]
  const copy = [...items]
  for (let i = 0; i < size; i++) {
    const j = i + Math.floor(Math.random() * (copy.length - i))
    const tmp = copy[i] as T
    copy[i] = copy[j] as T
    copy[j] = tmp
  }
  return copy.slice(0, size)
}

export async function checkNodesOutcome (o: {
  target: string
  /** The merchant whose checkout ids the load created (checkout ids are per merchant). */
  merchantId: string
  ackedIds: readonly string[]
  nodes: readonly NodeAdmin[]
  /** An internal API token allowed to read (the `audit` service's). */
  internalToken: string
  /** 0 = check every id. */
  sampleMax: number
  onProgress?: (checked: number, total: number) => void
}): Promise<OutcomeReport> {
  const startedAt = performance.now()
  const { distinct, repeated } = distinctIds(o.ackedIds)
  const toCheck = o.sampleMax > 0 ? sample(distinct, o.sampleMax) : distinct
  const pools = o.nodes.map((node) => new Pool(node.adminOrigin, {
    connections: outcomeCheckConnectionsPerNode,
    pipelining: outcomeCheckPipelining,
    headersTimeout: outcomeCheckRequestTimeoutMs,
    bodyTimeout: outcomeCheckRequestTimeoutMs,
  }))
  const foundPerNode: Record<string, number> = Object.fromEntries(o.nodes.map((n) => [n.id, 0]))
  const lost: string[] = []
  const duplicated: string[] = [...repeated]
  let checkErrors = 0
  let checked = 0
  const deadline = AbortSignal.timeout(outcomeCheckTimeoutMs)

  const foundOn = async (pool: Pool, id: string): Promise<boolean | undefined> => {
    try {
      const res = await pool.request({
        method: 'GET',
        path: `/internal/payments/${o.merchantId}/${id}`,
        headers: { [internalTokenHeader]: o.internalToken },
        signal: deadline,
      })
      const text = await res.body.text()
      if (res.statusCode === 404) return false
      if (res.statusCode === 200 && text.includes(`"checkout_id":"${id}"`)) return true
      return undefined
    } catch {
      return undefined
    }
  }

  let nextIndex = 0
  const worker = async (): Promise<void> => {
    while (nextIndex < toCheck.length && !deadline.aborted) {
      const id = toCheck[nextIndex++] as string
      const answers = await Promise.all(pools.map((pool) => foundOn(pool, id)))
      let hits = 0
      answers.forEach((answer, i) => {
        if (answer === undefined) checkErrors++
        if (answer === true) {
          hits++
          foundPerNode[o.nodes[i]!.id]!++
        }
      })
      if (!answers.includes(undefined)) {
        if (hits === 0) lost.push(id)
        if (hits > 1) duplicated.push(id)
      }
      checked++
    }
  }

  const progress = setInterval(() => o.onProgress?.(checked, toCheck.length), outcomeCheckProgressIntervalMs)
  try {
    await Promise.all(Array.from({ length: Math.min(outcomeCheckConcurrency, toCheck.length) }, worker))
  } finally {
    clearInterval(progress)
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => {})))
  }
  if (deadline.aborted) checkErrors += toCheck.length - checked
  return {
    target: o.target,
    acked: o.ackedIds.length,
    distinct: distinct.length,
    checked,
    sampled: toCheck.length < distinct.length,
    lost: lost.length,
    duplicated: duplicated.length,
    checkErrors,
    foundPerNode,
    examples: { lost: lost.slice(0, outcomeExamplesMax), duplicated: duplicated.slice(0, outcomeExamplesMax) },
    method: `GET /internal/payments/<merchant>/<id> on each of ${o.nodes.length} nodes' admin ports`,
    durationS: (performance.now() - startedAt) / 1000,
    passed: lost.length === 0 && duplicated.length === 0 && checkErrors === 0,
  }
}

/**
 * The same check on the nodes' stores after they were stopped (graceful SIGTERM: drained, store
 * closed): each node's LevelDB is reopened through payment-svc's own PaymentStore and EVERY
 * distinct acknowledged id is looked up in every store. No sampling, and it also proves the
 * writes survive a close and reopen of the store.
 */
export async function checkStoresOutcome (o: {
  target: string
  /** The merchant whose checkout ids the load created. */
  merchantId: string
  ackedIds: readonly string[]
  nodes: ReadonlyArray<{ id: string, dataDir: string }>
  /** The key ring the nodes sealed with (their RINGPAY_FIELD_KEYS_FILE). */
  fieldKeysFile: string
}): Promise<OutcomeReport> {
  const startedAt = performance.now()
  const { PaymentStore } = await import('../../payment-svc/store.ts')
  const { KeyRing } = await import('../../lib/field-crypto.ts')
  const sealer = KeyRing.fromFile(o.fieldKeysFile)
  const { distinct, repeated } = distinctIds(o.ackedIds)
  const hits = new Uint8Array(distinct.length)
  const foundPerNode: Record<string, number> = {}
  let checkErrors = 0
  for (const node of o.nodes) {
    const store = new PaymentStore(node.dataDir, { sealer })
    await store.open(node.id, Date.now())
    let found = 0
    try {
      distinct.forEach((id, i) => {
        const payment = store.getPayment(o.merchantId, id)
        if (payment === undefined) return
        if (payment.checkoutId !== id) {
          checkErrors++
          return
        }
        hits[i]!++
        found++
      })
    } finally {
      await store.close()
    }
    foundPerNode[node.id] = found
  }
  const lost: string[] = []
  const duplicated: string[] = [...repeated]
  distinct.forEach((id, i) => {
    if (hits[i] === 0) lost.push(id)
    if ((hits[i] as number) > 1) duplicated.push(id)
  })
  return {
    target: o.target,
    acked: o.ackedIds.length,
    distinct: distinct.length,
    checked: distinct.length,
    sampled: false,
    lost: lost.length,
    duplicated: duplicated.length,
    checkErrors,
    foundPerNode,
    examples: { lost: lost.slice(0, outcomeExamplesMax), duplicated: duplicated.slice(0, outcomeExamplesMax) },
    method: `PaymentStore.getPayment on each of ${o.nodes.length} nodes' LevelDB, reopened after the nodes stopped`,
    durationS: (performance.now() - startedAt) / 1000,
    passed: lost.length === 0 && duplicated.length === 0 && checkErrors === 0,
  }
}
