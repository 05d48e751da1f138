// Open-loop load: requests are scheduled at a fixed arrival rate whatever the target does, and
// each latency is measured from the request's *intended* send time, so a stall shows up in the
// latency of every request that should have been sent during it (no coordinated omission).
// wrk2 would do this, but Debian has no wrk2 package (`apt-cache policy wrk2`: nothing), so this
// is a small generator on undici, run inside the bench process.
//
// Bounds: at most `inflightMax` requests are outstanding; a request due while the bound is reached
// is not sent and counted as `dropped` (a saturated target, or a generator that cannot keep up:
// either way the rate was not achieved, and the report says so). Node's timers tick about once a
// millisecond; requests due within a tick go out together, and the latency clock of each still
// starts at its own intended time (the tick's delay counts against the target, conservatively).
// The generator needs CPU too (roughly one core at ~10k req/s on these machines): on a 2-core box
// it competes with nginx and the target, as wrk does.

import { Pool } from 'undici'
import { benchPath, benchRequestBody, type LoadResult, type LoadTarget } from './load.ts'
import { perSecondSeries, summarizeLatencyUs } from './stats.ts'

/** Scheduler tick: how often due requests are sent. */
export const openLoopTickMs = 1
/** Per-request deadline (headers, then body) before it counts as a timeout. */
export const openLoopRequestTimeoutMs = 5_000
/** After the last scheduled request: how long outstanding ones may take before they are aborted. */
export const openLoopDrainTimeoutMs = 10_000
/** How often progress is reported. */
export const openLoopProgressIntervalMs = 1_000
/** Requests one run may schedule at most (memory for the per-request arrays: ~20 bytes each). */
export const openLoopRequestsMax = 20_000_000

export interface OpenLoopOptions {
  target: LoadTarget
  /** Arrival rate, requests per second. */
  rateRps: number
  durationS: number
  /** Keep-alive connections to the target. */
  connections: number
  /** Outstanding requests at most; past it a due request is dropped. */
  inflightMax: number
  onProgress?: (elapsedS: number, responses: number) => void
  signal?: AbortSignal
  /** The body of request `index` (default: the bench's fixed body). */
  requestBody?: (index: number) => string
  /** Every request's fate: its status (0 = no answer: dropped, timed out, failed) and, for
   *  answers other than 2xx (and 2xx too with `readOkBody`), the body (a problem's `code` says
   *  who refused and why); `intendedMs` is its intended send time on performance.now()'s clock. */
  onAnswer?: (checkoutId: string, status: number, body: string | undefined, intendedMs: number) => void
  /** Hand 2xx bodies to onAnswer as well (e.g. a client that reads the payment's version). */
  readOkBody?: boolean
}

export async function runOpenLoop (o: OpenLoopOptions): Promise<LoadResult> {
  const total = Math.floor(o.rateRps * o.durationS)
  if (total < 1 || total > openLoopRequestsMax) {
    throw new Error(`rate × duration = ${total} requests; must be within 1..${openLoopRequestsMax}`)
  }
  const pool = new Pool(o.target.origin, {
    connections: o.connections,
    pipelining: 1,
    headersTimeout: openLoopRequestTimeoutMs,
    bodyTimeout: openLoopRequestTimeoutMs,
  })
  const intervalMs = 1000 / o.rateRps
  // Per scheduled request: completion (µs since start), latency from the intended time, status
  // (0 = no answer: dropped, timed out or failed).
  const endUs = new Float64Array(total)
  const latencyUs = new Float64Array(total).fill(-1)
  const status = new Uint16Array(total)
  const ackedIds: string[] = []
  const errors = { connect: 0, read: 0, write: 0, timeout: 0, dropped: 0 }
  let answered = 0
  let inflight = 0
  let next = 0
  let onIdle: (() => void) | undefined
  const authorization = `Bearer ${o.target.apiKey}`
  const start = performance.now()

  const finish = (): void => {
    inflight--
    if (inflight === 0 && next >= total) onIdle?.()
  }

  const send = (index: number): void => {
    const intended = start + index * intervalMs
    const checkoutId = `${o.target.idPrefix}1_${index}_${Math.round((intended - start) * 1000)}`
    if (inflight >= o.inflightMax) {
      errors.dropped++
      o.onAnswer?.(checkoutId, 0, undefined, intended)
      return
    }
    inflight++
    pool.request({
      method: 'POST',
      path: benchPath,
      headers: {
        'content-type': 'application/json',
        authorization,
        'x-payment-checkout-id': checkoutId,
      },
      body: o.requestBody?.(index) ?? benchRequestBody,
    }).then(async (res) => {
      const ok = res.statusCode >= 200 && res.statusCode <= 299
      if (o.onAnswer === undefined || (ok && o.readOkBody !== true)) {
        await res.body.dump()
        o.onAnswer?.(checkoutId, res.statusCode, undefined, intended)
      } else {
        o.onAnswer(checkoutId, res.statusCode, await res.body.text().catch(() => ''), intended)
      }
      const now = performance.now()
      endUs[index] = (now - start) * 1000
      latencyUs[index] = (now - intended) * 1000
      status[index] = res.statusCode
      answered++
      if (res.statusCode === 202) ackedIds.push(checkoutId)
    }, (error: { code?: string }) => {
      o.onAnswer?.(checkoutId, 0, undefined, intended)
      endUs[index] = (performance.now() - start) * 1000
      const code = error?.code ?? ''
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') errors.timeout++
      else if (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT') errors.connect++
      else if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') errors.read++
      else errors.write++
    }).finally(finish)
  }

  const progress = setInterval(() => o.onProgress?.((performance.now() - start) / 1000, answered), openLoopProgressIntervalMs)
  try {
    await new Promise<void>((resolve, reject) => {
      const abort = (): void => reject(o.signal?.reason ?? new Error('aborted'))
      if (o.signal?.aborted) return abort()
      o.signal?.addEventListener('abort', abort, { once: true })
      const tick = (): void => {
        if (o.signal?.aborted) return
        const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1)
        while (next < due) send(next++)
        if (next < total) {
          setTimeout(tick, openLoopTickMs)
          return
        }
        o.signal?.removeEventListener('abort', abort)
        resolve()
      }
      tick()
    })
    const scheduledFor = (performance.now() - start) / 1000
    if (inflight > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => { onIdle = resolve }),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, openLoopDrainTimeoutMs) }),
      ])
      clearTimeout(timer)
    }
    o.signal?.throwIfAborted()
    const durationS = Math.max(scheduledFor, o.durationS)
    const samples: number[] = []
    const statusCounts: Record<string, number> = {}
    let ok = 0
    for (let i = 0; i < total; i++) {
      const st = status[i] as number
      if (st === 0) continue
      statusCounts[st] = (statusCounts[st] ?? 0) + 1
      if (st >= 200 && st <= 299) ok++
      samples.push(latencyUs[i] as number)
    }
    const unanswered = total - answered - errors.dropped - errors.timeout - errors.connect - errors.read - errors.write
    // Still outstanding after the drain timeout: count as timeouts.
    errors.timeout += Math.max(0, unanswered)
    return {
      mode: 'open',
      durationS,
      responses: answered,
      throughputRps: ok / durationS,
      statusCounts,
      non2xx: answered - ok,
      errors,
      latencyMs: summarizeLatencyUs(Float64Array.from(samples)),
      series: perSecondSeries(endUs, latencyUs, status, total, o.durationS),
      ackedIds,
      recorded: true,
    }
  } finally {
    clearInterval(progress)
    await pool.destroy().catch(() => {})
  }
}
