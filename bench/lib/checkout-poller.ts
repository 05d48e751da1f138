// What a checkout page does after its 202: long-poll `GET /payments/{id}?wait_ms=…&after_version=…`
// through the public nginx until the payment is terminal, each answer's version becoming the next
// `after_version`. The e2e bench runs one such client per accepted payment, so these GETs are part
// of the load, and a payment's client latency is its POST's intended send time → the answer that
// first showed it terminal.

import { Pool } from 'undici'

/** One long-poll's wait at the node (≤ the node's longPollWaitMsMax, under nginx's read timeout). */
export const pollWaitMsDefault = 10_000
/** Connections to nginx for the polls: every waiting poll holds one, as every page would. */
export const pollConnectionsMax = 2_048
/** A client stops polling this long after its POST's intended send time (its payment counts as unfinished). */
export const pollGiveUpMsDefault = 30_000
/** Pause after a failed poll (no answer, non-200) before the next one. */
export const pollRetryDelayMs = 100
/** Deadline of one poll beyond its wait_ms. */
export const pollSlackMs = 5_000

const terminalStatuses = new Set(['succeeded', 'failed', 'canceled'])

export interface PollerReport {
  /** Clients started (one per 202). */
  started: number
  /** Saw a terminal status before giving up. */
  finished: number
  gaveUp: number
  /** GETs sent, and those that got no 200. */
  polls: number
  pollErrors: number
}

export class CheckoutPoller {
  readonly #pool: Pool
  readonly #apiKey: string
  readonly #waitMs: number
  readonly #giveUpMs: number
  readonly #running = new Set<Promise<void>>()
  /** Client latency (ms) by checkout id, for those that finished. */
  readonly latencyMs = new Map<string, number>()
  /** When (ms since the epoch) each finished client saw its payment terminal. */
  readonly seenAtEpochMs = new Map<string, number>()
  readonly report: PollerReport = { started: 0, finished: 0, gaveUp: 0, polls: 0, pollErrors: 0 }

  constructor (o: { publicUrl: string, apiKey: string, waitMs?: number, giveUpMs?: number }) {
    this.#waitMs = o.waitMs ?? pollWaitMsDefault
    this.#giveUpMs = o.giveUpMs ?? pollGiveUpMsDefault
    this.#apiKey = `Bearer ${o.apiKey}`
    this.#pool = new Pool(o.publicUrl, {
      connections: pollConnectionsMax,
      headersTimeout: this.#waitMs + pollSlackMs,
      bodyTimeout: this.#waitMs + pollSlackMs,
    })
  }

  /** Starts the client of one accepted payment (`body`: the 202's JSON). */
  follow (id: string, body: string, intendedMs: number): void {
    this.report.started++
    let payment: { status?: string, version?: number }
    try {
      payment = JSON.parse(body) as typeof payment
    } catch {
      payment = {}
    }
    const run = this.#poll(id, payment.status ?? 'pending', payment.version ?? 0, intendedMs)
    this.#running.add(run)
    void run.finally(() => this.#running.delete(run))
  }

  async #poll (id: string, firstStatus: string, firstVersion: number, intendedMs: number): Promise<void> {
    let version = firstVersion
    let status = firstStatus
    const giveUpAt = intendedMs + this.#giveUpMs
    const path = `/payments/${encodeURIComponent(id)}`
    while (!terminalStatuses.has(status)) {
      const waitMs = Math.floor(Math.min(this.#waitMs, giveUpAt - performance.now()))
      if (waitMs <= 0) {
        this.report.gaveUp++
        return
      }
      this.report.polls++
      try {
        const res = await this.#pool.request({
          method: 'GET',
          path: `${path}?wait_ms=${waitMs}&after_version=${version}`,
          headers: { authorization: this.#apiKey },
        })
        const text = await res.body.text()
        if (res.statusCode === 200) {
          const p = JSON.parse(text) as { status: string, version: number }
          status = p.status
          version = p.version
          continue
        }
      } catch {
        // no answer: retried below, until the client gives up
      }
      this.report.pollErrors++
      await new Promise((resolve) => setTimeout(resolve, pollRetryDelayMs))
    }
    const now = performance.now()
    this.latencyMs.set(id, now - intendedMs)
    this.seenAtEpochMs.set(id, performance.timeOrigin + now)
    this.report.finished++
  }

  /** Resolves when every client has finished or given up. */
  async settled (): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running])
  }

  async close (): Promise<void> {
    await this.#pool.destroy().catch(() => {})
  }
}
