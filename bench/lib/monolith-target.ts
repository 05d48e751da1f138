// The e2e bench's monolith target: bench/targets/monolith-server.ts behind its own nginx
// (target-front.ts), writing to its own table in the stack's Postgres and charging the stack's
// sandbox PSP. One run: payments
// at a fixed arrival rate (the same bodies as Ringpay's), latency = intended send → the 200 with
// the final status; then its outcome check: at most one PSP charge per checkout id, and the
// Postgres status of every row equal to the PSP's.
//
// Webhooks: the sandbox PSP sends one per charge to a single base URL. With `webhooks: 'own'`
// that URL points at the monolith's nginx while (and only while) a monolith run goes on, so each
// target receives its own webhooks, as it would in production; with 'ringpay' it is left alone
// (the monolith's webhooks then reach Ringpay's nodes, which refuse unknown ids, and the PSP
// retries them): for a stack shared with other work, e.g. the tests.

import { randomBytes } from 'node:crypto'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { pickFreePorts } from '../../scripts/stack/ports.ts'
import { createMonolithTable, monolithStatuses } from '../targets/monolith-schema.ts'
import { dropBenchTable } from '../targets/naive-schema.ts'
import { createMonolithProcess } from '../targets/processes.ts'
import { runOpenLoop } from './open-loop.ts'
import { paymentRequestBody, type PaymentMix } from './payment-load.ts'
import { FrontedServer, pspChargesOf, type OwnTargetOutcome, type OwnTargetRun } from './target-front.ts'

export const monolithLoadConnections = 64
export const monolithInflightMax = 4_096
export const monolithCheckExamplesMax = 10

export type MonolithWebhooks = 'own' | 'ringpay'

export interface MonolithOutcome extends OwnTargetOutcome {
  sent: number
  answered: number
  rows: number
}

export interface MonolithRun extends OwnTargetRun {
  acceptedPerSecond: Array<{ second: number, count: number }>
  ids: string[]
}

export class MonolithTarget {
  readonly #stack: StackInfo
  readonly #table: string
  readonly #front: FrontedServer
  readonly origin: string
  #started = false

  constructor (o: { stack: StackInfo, dir: string, ports: number[], webhooks: MonolithWebhooks }) {
    this.#stack = o.stack
    const table = this.#table = `monolith_payments_${randomBytes(4).toString('hex')}`
    this.#front = new FrontedServer({
      stack: o.stack, dir: o.dir, name: 'monolith', ownWebhooks: o.webhooks === 'own', ports: o.ports,
      server: (spec) => createMonolithProcess({ name: 'monolith', ...spec, databaseUrl: o.stack.databaseUrl, table, psp: o.stack.psp }),
    })
    this.origin = this.#front.origin
  }

  static async create (o: { stack: StackInfo, dir: string, webhooks: MonolithWebhooks }): Promise<MonolithTarget> {
    return new MonolithTarget({ ...o, ports: await pickFreePorts(3) })
  }

  get table (): string {
    return this.#table
  }

  async start (): Promise<void> {
    this.#started = true
    await createMonolithTable(this.#stack.databaseUrl, this.#table)
    await this.#front.start()
  }

  /** Process group leaders → component name, for CPU accounting. */
  groups (): Map<number, string> {
    return this.#front.groups()
  }

  /** Points the PSP's webhooks at the monolith (true) or back at the stack (false), with 'own'. */
  async routeWebhooks (toMonolith: boolean): Promise<void> {
    await this.#front.routeWebhooks(toMonolith)
  }

  async run (o: { idPrefix: string, rateRps: number, durationS: number, mix: PaymentMix, drainDeadlineS: number }): Promise<MonolithRun> {
    const bodyOf = paymentRequestBody(o.mix)
    const latencies: number[] = []
    const answers: Record<string, number> = {}
    const ids: string[] = []
    const perSecond = new Map<number, number>()
    let t0 = Number.NaN
    const pendingBefore = await this.#front.webhooksPending()
    const load = await runOpenLoop({
      target: { origin: this.origin, apiKey: this.#stack.apiKeys.merchant_demo, idPrefix: o.idPrefix },
      rateRps: o.rateRps,
      durationS: o.durationS,
      connections: monolithLoadConnections,
      inflightMax: monolithInflightMax,
      requestBody: bodyOf,
      readOkBody: true,
      onAnswer: (id, status, _body, intendedMs) => {
        if (Number.isNaN(t0)) t0 = intendedMs
        ids.push(id)
        answers[status === 0 ? 'no answer' : String(status)] = (answers[status === 0 ? 'no answer' : String(status)] ?? 0) + 1
        if (status !== 200) return
        latencies.push(performance.now() - intendedMs)
        const second = Math.floor((performance.now() - t0) / 1000)
        perSecond.set(second, (perSecond.get(second) ?? 0) + 1)
      },
    })
    const unanswered = load.errors.timeout + load.errors.dropped + load.errors.connect + load.errors.read + load.errors.write
    const pending = await this.#front.webhooksDrained(performance.now() + o.drainDeadlineS * 1000, pendingBefore)
    return {
      sent: ids.length,
      finished: latencies.length,
      latencyMs: Float64Array.from(latencies).sort(),
      answers,
      drained: unanswered === 0 && pending <= pendingBefore,
      webhooksPendingBefore: pendingBefore,
      webhooksPendingEnd: pending,
      acceptedPerSecond: [...perSecond.entries()].sort(([a], [b]) => a - b).map(([second, count]) => ({ second, count })),
      ids,
    }
  }

  /** One PSP charge at most per id, and every row's status = the PSP's (after the run drained). */
  async check (run: MonolithRun): Promise<MonolithOutcome> {
    const rows = await monolithStatuses(this.#stack.databaseUrl, this.#table, run.ids)
    const out: MonolithOutcome = {
      sent: run.sent, answered: run.finished, rows: rows.size, lost: 0, doubleCharges: 0, mismatches: 0, checkErrors: 0,
      statuses: {}, examples: [], passed: false,
    }
    const fail = (kind: 'lost' | 'doubleCharges' | 'mismatches' | 'checkErrors', why: string): void => {
      out[kind]++
      if (out.examples.length < monolithCheckExamplesMax) out.examples.push(why)
    }
    out.lost = Math.max(0, run.finished - rows.size)
    await pspChargesOf(this.#stack.psp, run.ids, (id, charges) => {
      if (charges.length > 1) fail('doubleCharges', `${id}: ${charges.length} charges`)
      const row = rows.get(id)
      if (row === undefined) {
        if (charges.length > 0) fail('mismatches', `${id}: charged at the PSP, no row`)
        return
      }
      out.statuses[row] = (out.statuses[row] ?? 0) + 1
      const psp = charges[0]?.status ?? 'psp_error'
      if (row !== psp) fail('mismatches', `${id}: Postgres ${row}, PSP ${psp}`)
    }, (id, why) => fail('checkErrors', `${id}: ${why}`))
    if (out.lost > 0) out.examples.unshift(`${out.lost} answered 200 without a row`)
    out.passed = out.lost + out.doubleCharges + out.mismatches + out.checkErrors === 0
    return out
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    await this.#front.stop()
    await dropBenchTable(this.#stack.databaseUrl, this.#table).catch(() => {})
  }
}

export function describeMonolithOutcome (o: MonolithOutcome): string {
  return `${o.answered} of ${o.sent} answered 200, ${o.rows} rows; lost ${o.lost}, double charges ${o.doubleCharges}, ` +
    `Postgres≠PSP ${o.mismatches}, unreadable ${o.checkErrors} → ${o.passed ? 'PASS' : 'FAIL'}` +
    (o.examples.length > 0 ? `\n  ${o.examples.join('; ')}` : '')
}
