// The e2e bench's async-floor target (issue #13): bench/targets/async-floor-server.ts behind its
// own nginx (target-front.ts), charging the stack's sandbox PSP, driven exactly as Ringpay is:
// the same open-loop POSTs, then one long-polling checkout client per 202 (checkout-poller.ts).
// Its latency is Ringpay's: intended send → the terminal status seen by the client. Its outcome
// check: at most one PSP charge per checkout id, and every accepted payment's status (read back
// through its nginx) equal to the PSP's ('failed' when the PSP holds no charge).

import { join } from 'node:path'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { pickFreePorts } from '../../scripts/stack/ports.ts'
import { createFloorProcess } from '../targets/processes.ts'
import { CheckoutPoller } from './checkout-poller.ts'
import type { MonolithWebhooks } from './monolith-target.ts'
import { startPaymentLoad, type PaymentMix } from './payment-load.ts'
import { ringpayInflightMax, ringpayLoadConnections } from './ringpay-run.ts'
import { FrontedServer, lookUpEach, pspChargesOf, type OwnTargetOutcome, type OwnTargetRun } from './target-front.ts'

/** Outcome check: read-backs through the floor's nginx at once. */
export const floorReadBackConcurrency = 32
export const floorCheckExamplesMax = 10

export interface FloorRun extends OwnTargetRun {
  acked: string[]
}

export interface FloorOutcome extends OwnTargetOutcome {
  acked: number
}

export class FloorTarget {
  readonly #stack: StackInfo
  readonly #front: FrontedServer
  readonly origin: string
  #started = false

  constructor (o: { stack: StackInfo, dir: string, ports: number[], webhooks: MonolithWebhooks }) {
    this.#stack = o.stack
    this.#front = new FrontedServer({
      stack: o.stack, dir: join(o.dir, 'floor'), name: 'floor', ownWebhooks: o.webhooks === 'own', ports: o.ports,
      server: (spec) => createFloorProcess({ name: 'floor', ...spec, psp: o.stack.psp }),
    })
    this.origin = this.#front.origin
  }

  static async create (o: { stack: StackInfo, dir: string, webhooks: MonolithWebhooks }): Promise<FloorTarget> {
    return new FloorTarget({ ...o, ports: await pickFreePorts(3) })
  }

  async start (): Promise<void> {
    this.#started = true
    await this.#front.start()
  }

  /** Process group leaders → component name, for CPU accounting. */
  groups (): Map<number, string> {
    return this.#front.groups()
  }

  async routeWebhooks (toFloor: boolean): Promise<void> {
    await this.#front.routeWebhooks(toFloor)
  }

  async run (o: { idPrefix: string, rateRps: number, durationS: number, mix: PaymentMix, drainDeadlineS: number, pollWaitMs: number, pollGiveUpMs: number }): Promise<FloorRun> {
    const poller = new CheckoutPoller({ publicUrl: this.origin, apiKey: this.#stack.apiKeys.merchant_demo, waitMs: o.pollWaitMs, giveUpMs: o.pollGiveUpMs })
    const pendingBefore = await this.#front.webhooksPending()
    try {
      const { classes, load } = await startPaymentLoad({
        stack: { publicUrl: this.origin, apiKeys: this.#stack.apiKeys },
        idPrefix: o.idPrefix, rateRps: o.rateRps, durationS: o.durationS, mix: o.mix,
        connections: ringpayLoadConnections, inflightMax: ringpayInflightMax,
        onAccepted: (id, body, intendedMs) => poller.follow(id, body, intendedMs),
      }).done
      await poller.settled()
      const unanswered = load.errors.timeout + load.errors.dropped + load.errors.connect + load.errors.read + load.errors.write
      const pending = await this.#front.webhooksDrained(performance.now() + o.drainDeadlineS * 1000, pendingBefore)
      return {
        sent: classes.sent,
        acked: classes.acked,
        finished: poller.report.finished,
        latencyMs: Float64Array.from(poller.latencyMs.values()).sort(),
        answers: classes.answers,
        drained: unanswered === 0 && poller.report.gaveUp === 0 && pending <= pendingBefore,
        webhooksPendingBefore: pendingBefore,
        webhooksPendingEnd: pending,
      }
    } finally {
      await poller.close()
    }
  }

  /** At most one PSP charge per id, and every accepted payment's status = the PSP's. */
  async check (run: FloorRun): Promise<FloorOutcome> {
    const out: FloorOutcome = { acked: run.acked.length, lost: 0, doubleCharges: 0, mismatches: 0, checkErrors: 0, statuses: {}, examples: [], passed: false }
    const fail = (kind: 'lost' | 'doubleCharges' | 'mismatches' | 'checkErrors', why: string): void => {
      out[kind]++
      if (out.examples.length < floorCheckExamplesMax) out.examples.push(why)
    }
    const statuses = await this.#readBack(run.acked, (id, why) => fail('checkErrors', `${id}: ${why}`))
    await pspChargesOf(this.#stack.psp, run.acked, (id, charges) => {
      if (charges.length > 1) fail('doubleCharges', `${id}: ${charges.length} charges`)
      const status = statuses.get(id)
      if (status === undefined) return fail('lost', `${id}: acknowledged, not found`)
      out.statuses[status] = (out.statuses[status] ?? 0) + 1
      const psp = charges[0]?.status ?? 'failed'
      if (status !== psp) fail('mismatches', `${id}: floor ${status}, PSP ${psp}`)
    }, (id, why) => fail('checkErrors', `${id}: ${why}`))
    out.passed = out.lost + out.doubleCharges + out.mismatches + out.checkErrors === 0
    return out
  }

  /** Each id's status as the floor answers `GET /payments/{id}` (no wait); absent when 404. */
  async #readBack (ids: readonly string[], onError: (id: string, why: string) => void): Promise<Map<string, string>> {
    const auth = `Bearer ${this.#stack.apiKeys.merchant_demo}`
    const statuses = new Map<string, string>()
    await lookUpEach(this.origin, floorReadBackConcurrency, ids, async (pool, id) => {
      const res = await pool.request({ method: 'GET', path: `/payments/${encodeURIComponent(id)}`, headers: { authorization: auth } })
      const text = await res.body.text()
      if (res.statusCode === 200) statuses.set(id, (JSON.parse(text) as { status: string }).status)
      else if (res.statusCode !== 404) onError(id, `read back answered ${res.statusCode}`)
    }, onError)
    return statuses
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    await this.#front.stop()
  }
}

export function describeFloorOutcome (o: FloorOutcome): string {
  return `${o.acked} acknowledged; lost ${o.lost}, double charges ${o.doubleCharges}, status≠PSP ${o.mismatches}, ` +
    `unreadable ${o.checkErrors} → ${o.passed ? 'PASS' : 'FAIL'}` + (o.examples.length > 0 ? `\n  ${o.examples.join('; ')}` : '')
}
