// Every kind of fault the suite injects while load runs. Each says how it breaks something and
// how it repairs it; faults/run-fault.ts runs the load around it and checks the invariants.
//
// The CDC relay is a worker thread inside its payment node (it shares the node's LevelDB handle,
// cdc-relay/README.md), so `kill -9` of the relay is a `kill -9` of the node process at a moment
// its relay has unpublished entries: `relay-kill` waits for that moment.

import pg from 'pg'
import type { StackInfo } from '../scripts/stack/info.ts'
import type { PaymentLoadClasses, PaymentMix } from '../bench/lib/payment-load.ts'
import type { FaultProfile } from './profiles.ts'

export interface FaultContext {
  stack: StackInfo
  profile: FaultProfile
  control: (path: string, body?: unknown) => Promise<unknown>
  /** PUT /admin/config on the sandbox PSP (a partial runtime config). */
  pspConfig: (patch: Record<string, unknown>) => Promise<void>
  /** A gauge or counter of a payment node's /metrics (summed over label sets). */
  nodeMetric: (nodeId: string, name: string) => Promise<number>
  log: (line: string) => void
}

export interface FaultKind {
  name: string
  /** One line for the report and the README. */
  what: string
  mix: PaymentMix
  /** Before the load starts. */
  prepare?: (ctx: FaultContext) => Promise<void>
  inject: (ctx: FaultContext) => Promise<void>
  /** How long the fault stays in place per injection. */
  holdMs: (profile: FaultProfile) => number
  clear: (ctx: FaultContext) => Promise<void>
  /** After the load ended and the last clear, before the outcome check. */
  restore?: (ctx: FaultContext) => Promise<void>
  /** Checks on what clients saw, beyond the outcome check: each string is a failure. */
  expect?: (load: PaymentLoadClasses) => string[]
  /** Load kept running this long after the last clear (e.g. to see traffic come back). */
  tailMs?: (profile: FaultProfile) => number
  /** After the outcome check: checks on where the payments ended up; each string is a failure. */
  verify?: (ctx: FaultContext, load: PaymentLoadClasses) => Promise<string[]>
}

/** The node whose keys each node fault takes away (n2: the middle of the ring, any would do). */
const victimNode = 'n2'
const relayVictimNode = 'n1'
const budgetVictimNode = 'n3'
/** A disk budget small enough for the load to exhaust while Kafka is down. */
const tinyBacklogEventsMax = 20
const relayLagPollIntervalMs = 5
const relayLagWaitMs = 5_000

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

const answeredAtLeastOnce = (load: PaymentLoadClasses, key: string, why: string): string[] =>
  (load.answers[key] ?? 0) > 0 ? [] : [`no request was answered "${key}": ${why}`]

/**
 * Issue #16: Nimbus (the PSP the stack routes NOK and DKK to, with the sandbox as failover) killed
 * under load and started again. Payments created once its breakers had time to open (a few calls:
 * `outageSettleMs`) must all be at the sandbox; payments created once it is back and its breakers
 * had time to probe (`returnMs`) must reach it again; the outcome check counts charges across both
 * PSPs (one per payment, at the PSP the payment records).
 */
function pspProviderOutage (): FaultKind {
  const outageSettleMs = 3_000
  const returnMs = 4_000
  const windows: Array<{ downAtMs: number, upAtMs: number }> = []
  return {
    name: 'psp-provider-outage',
    what: 'the Nimbus PSP killed (kill -9) under NOK/DKK load, started after the hold: new payments fail over to the sandbox, in-flight ones finish at Nimbus or move only when proven uncharged, traffic returns to Nimbus',
    mix: 'routed',
    prepare: async () => { windows.length = 0 },
    inject: async (ctx) => {
      windows.push({ downAtMs: Date.now(), upAtMs: Number.POSITIVE_INFINITY })
      await ctx.control('/services/nimbus/kill')
    },
    holdMs: (p) => p.pspProviderDownMs,
    clear: async (ctx) => {
      // From the start call on, Nimbus may take payments again (its probe can succeed before the
      // control API answers): the outage window ends here.
      windows.at(-1)!.upAtMs = Date.now()
      await ctx.control('/services/nimbus/start')
    },
    tailMs: () => returnMs + 3_000,
    verify: async (ctx, load) => {
      const client = new pg.Client({ connectionString: ctx.stack.databaseUrls.readonly })
      await client.connect()
      try {
        const { rows } = await client.query<{ psp_provider: string | null, created_ms: string }>(
          `SELECT psp_provider, (extract(epoch FROM created_at) * 1000)::bigint AS created_ms FROM payments WHERE checkout_id = ANY($1)`, [load.acked])
        const failures: string[] = []
        const last = windows.at(-1)!
        const during = rows.filter((r) => windows.some((w) => Number(r.created_ms) >= w.downAtMs + outageSettleMs && Number(r.created_ms) < w.downAtMs + (w.upAtMs - w.downAtMs)))
        const after = rows.filter((r) => Number(r.created_ms) >= last.upAtMs + returnMs)
        for (const r of during) if (r.psp_provider === 'nimbus') ctx.log(`psp-provider-outage: at Nimbus, created ${Number(r.created_ms) - last.downAtMs} ms after the kill`)
        const duringAtNimbus = during.filter((r) => r.psp_provider === 'nimbus').length
        if (during.length === 0) failures.push('no payment was created while Nimbus was down')
        if (duringAtNimbus > 0) failures.push(`${duringAtNimbus} of ${during.length} payments created while Nimbus was down are recorded at Nimbus`)
        if (during.some((r) => r.psp_provider === null)) failures.push('a payment created during the outage has no PSP recorded')
        if (after.length === 0) failures.push('no payment was created after Nimbus came back')
        else if (!after.some((r) => r.psp_provider === 'nimbus')) failures.push(`none of the ${after.length} payments created after Nimbus came back went to it`)
        ctx.log(`psp-provider-outage: during the outage ${during.length} payments, ${during.length - duringAtNimbus} at the sandbox; after it ${after.length}, ${after.filter((r) => r.psp_provider === 'nimbus').length} at Nimbus`)
        return failures
      } finally {
        await client.end()
      }
    },
  }
}

export const faultKinds: FaultKind[] = [
  {
    name: 'node-kill',
    what: `kill -9 of payment node ${victimNode}, restarted after the hold`,
    mix: 'standard',
    inject: async (ctx) => { await ctx.control(`/nodes/${victimNode}/kill`) },
    holdMs: (p) => p.nodeDownMs,
    clear: async (ctx) => { await ctx.control(`/nodes/${victimNode}/start`) },
    // Its keys must have failed cleanly (503 node_unavailable from nginx), not moved.
    expect: (load) => answeredAtLeastOnce(load, '503 node_unavailable', `the dead node's keys should fail closed`),
  },
  {
    name: 'relay-kill',
    what: `kill -9 of node ${relayVictimNode}'s process (and its relay worker) while the relay has unpublished entries`,
    mix: 'standard',
    inject: async (ctx) => {
      const deadline = performance.now() + relayLagWaitMs
      let lag = 0
      while (performance.now() < deadline && (lag = await ctx.nodeMetric(relayVictimNode, 'ringpay_relay_lag_events')) === 0) {
        await sleep(relayLagPollIntervalMs)
      }
      ctx.log(`relay lag at kill: ${lag} entries`)
      await ctx.control(`/nodes/${relayVictimNode}/kill`)
    },
    holdMs: (p) => p.nodeDownMs,
    clear: async (ctx) => { await ctx.control(`/nodes/${relayVictimNode}/start`) },
  },
  {
    name: 'processor-kill',
    what: 'kill -9 of processor p1 (mid-batch), restarted after the hold',
    mix: 'standard',
    inject: async (ctx) => { await ctx.control('/services/p1/kill') },
    holdMs: (p) => p.processorDownMs,
    clear: async (ctx) => { await ctx.control('/services/p1/start') },
  },
  {
    name: 'kafka-outage',
    what: 'Kafka stopped, started again after the hold',
    mix: 'standard',
    inject: async (ctx) => { await ctx.control('/kafka/stop') },
    holdMs: (p) => p.kafkaDownMs,
    clear: async (ctx) => { await ctx.control('/kafka/start') },
  },
  {
    name: 'postgres-outage',
    what: 'PostgreSQL stopped, started again after the hold',
    mix: 'standard',
    inject: async (ctx) => { await ctx.control('/postgres/stop') },
    holdMs: (p) => p.postgresDownMs,
    clear: async (ctx) => { await ctx.control('/postgres/start') },
  },
  {
    name: 'psp-5xx-burst',
    what: 'the PSP answers 60 % of charge calls with 500/503 (nothing charged) for the hold',
    mix: 'standard',
    inject: (ctx) => ctx.pspConfig({ error5xxRate: 0.6 }),
    holdMs: (p) => p.pspFaultMs,
    clear: (ctx) => ctx.pspConfig({ error5xxRate: 0 }),
  },
  {
    name: 'psp-timeout-after-charge',
    what: 'the PSP charges 30 % of calls durably and never answers them (socket cut after 1.5 s) for the hold',
    mix: 'standard',
    inject: (ctx) => ctx.pspConfig({ timeoutAfterChargeRate: 0.3, timeoutHoldMs: 1_500 }),
    holdMs: (p) => p.pspFaultMs,
    clear: (ctx) => ctx.pspConfig({ timeoutAfterChargeRate: 0 }),
  },
  {
    name: 'psp-declines',
    what: 'the PSP declines most payments (synchronously and by webhook), with 30 % of calls rate-limited (429) for the hold',
    mix: 'declines',
    inject: (ctx) => ctx.pspConfig({ rateLimitRate: 0.3 }),
    holdMs: (p) => p.pspFaultMs,
    clear: (ctx) => ctx.pspConfig({ rateLimitRate: 0 }),
  },
  {
    name: 'webhook-chaos',
    what: 'PSP webhooks duplicated (50 %), delayed (≤ 1.5 s), reordered (50 %) and dropped (30 %); dropped outcomes come from the watchdog',
    mix: 'webhooks',
    inject: (ctx) => ctx.pspConfig({ webhookDuplicateRate: 0.5, webhookDelayMsMax: 1_500, webhookReorderRate: 0.5, webhookDropRate: 0.3 }),
    holdMs: (p) => p.pspFaultMs,
    clear: (ctx) => ctx.pspConfig({ webhookDuplicateRate: 0, webhookDelayMsMax: 0, webhookReorderRate: 0, webhookDropRate: 0 }),
  },
  {
    name: 'disk-budget',
    what: `node ${budgetVictimNode} restarted with a disk budget of ${tinyBacklogEventsMax} unpublished entries, then Kafka stopped: the node sheds 503 backlog_full until Kafka is back`,
    mix: 'standard',
    prepare: async (ctx) => {
      await ctx.control(`/nodes/${budgetVictimNode}/restart`, { env: { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: String(tinyBacklogEventsMax) } })
    },
    inject: async (ctx) => { await ctx.control('/kafka/stop') },
    holdMs: (p) => p.kafkaDownMs,
    clear: async (ctx) => { await ctx.control('/kafka/start') },
    // Back to the node's own environment (restart without overrides) once the backlog drained.
    restore: async (ctx) => { await ctx.control(`/nodes/${budgetVictimNode}/restart`) },
    expect: (load) => answeredAtLeastOnce(load, '503 backlog_full', 'the exhausted budget should shed new payments'),
  },
  pspProviderOutage(),
  {
    name: 'nginx-reload',
    what: 'nginx reloaded (graceful: new workers, old ones finish their requests), several times',
    mix: 'standard',
    inject: async (ctx) => { await ctx.control('/nginx/reload') },
    holdMs: () => 0,
    clear: async () => {},
  },
]
