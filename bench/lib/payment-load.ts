// Payment load for end-to-end runs (the bench's e2e scenario, the fault suite): a fixed arrival
// rate of payments through the public nginx (the open-loop generator), with a mix of payment
// methods, and every request classified by what the client saw. The classification is what the
// outcome check holds each id to (bench/lib/system-outcome.ts): acknowledged, uncertain, refused.

import type { StackInfo } from '../../scripts/stack/info.ts'
import type { LoadResult } from './load.ts'
import { runOpenLoop } from './open-loop.ts'

/** Keep-alive connections to nginx. */
export const paymentLoadConnectionsDefault = 32
/** Outstanding requests at most; past it a due request is dropped (and counted as uncertain). */
export const paymentLoadInflightMaxDefault = 512

/** Payment methods by weight (sandbox PSP tokens, sandbox-psp/README.md). */
export const paymentMixes = {
  /** Mostly synchronous successes, some declines, some completed later by webhook. */
  standard: { pm_card_visa: 70, pm_card_declined: 15, pm_card_async: 10, pm_card_async_declined: 5 },
  /** The PSP declining most payments, synchronously and by webhook. */
  declines: { pm_card_declined: 40, pm_card_insufficient_funds: 20, pm_card_async_declined: 10, pm_card_visa: 30 },
  /** Most outcomes arrive only by webhook. */
  webhooks: { pm_card_async: 50, pm_card_async_declined: 20, pm_card_visa: 30 },
  /** Every payment succeeds synchronously (the e2e bench's default: the pipeline's own speed). */
  visa: { pm_card_visa: 100 },
  /** Issue #16: payments the stack routes to its second PSP, Nimbus (NOK and DKK; currenciesOf). */
  routed: { pm_card_visa: 75, pm_card_declined: 15, pm_card_async: 10 },
} as const satisfies Record<string, Record<string, number>>
export type PaymentMix = keyof typeof paymentMixes

const currencies = ['EUR', 'USD', 'GBP'] as const
/** The currencies of a mix's payments, when not the usual three (the stack routes these to Nimbus). */
const currenciesByMix: Partial<Record<PaymentMix, readonly string[]>> = { routed: ['NOK', 'DKK'] }

/** One cycle of 100 methods in weight proportion, so request i's method is deterministic. */
function methodCycle (mix: PaymentMix): string[] {
  const cycle: string[] = []
  for (const [method, weight] of Object.entries(paymentMixes[mix])) {
    for (let i = 0; i < weight; i++) cycle.push(method)
  }
  // Interleave so that every short stretch of the load has every method.
  return cycle.map((m, i) => ({ m, k: (i * 37) % cycle.length })).sort((a, b) => a.k - b.k).map((x) => x.m)
}

export interface PaymentLoadClasses {
  acked: string[]
  /** No answer, or nginx could not get one from the node (503 node_unavailable, 504 node_timeout). */
  uncertain: string[]
  /** A 4xx, or a 503 the node itself gave before writing (overloaded, backlog_full, shutting_down). */
  refused: string[]
  /** Anything else (e.g. a 500): a bug; the fault fails. */
  unexpected: Array<{ id: string, status: number, body: string }>
  /** Answers by `<status>` or `<status> <problem code>`; `no answer` for none. */
  answers: Record<string, number>
  /** Requests whose id the generator gave each class, in order of sending (for in-flight counts). */
  sent: number
}

/** Problem codes of a 503/504 that nginx makes when it got no answer from the node. */
const noAnswerCodes = new Set(['node_unavailable', 'node_timeout'])
/** 503 codes our node answers before it writes anything. */
const refusedBeforeWriteCodes = new Set(['overloaded', 'backlog_full', 'shutting_down'])

function problemCode (body: string | undefined): string | undefined {
  if (body === undefined) return undefined
  try {
    const code = (JSON.parse(body) as { code?: unknown }).code
    return typeof code === 'string' ? code : undefined
  } catch {
    return undefined
  }
}

/** Request `index`'s body: amounts, currencies and methods cycle deterministically. */
export function paymentRequestBody (mix: PaymentMix): (index: number) => string {
  const cycle = methodCycle(mix)
  const mixCurrencies = currenciesByMix[mix] ?? currencies
  return (index) => JSON.stringify({
    amount: 100 + (index % 9_900),
    currency: mixCurrencies[index % mixCurrencies.length],
    payment_method: cycle[index % cycle.length],
    description: `fault suite ${index}`,
  })
}

export interface PaymentLoad {
  /** Live view while the load runs. */
  readonly result: PaymentLoadClasses
  done: Promise<{ classes: PaymentLoadClasses, load: LoadResult }>
}

export function startPaymentLoad (o: {
  stack: Pick<StackInfo, 'publicUrl' | 'apiKeys'>
  idPrefix: string
  rateRps: number
  durationS: number
  mix: PaymentMix
  connections?: number
  inflightMax?: number
  signal?: AbortSignal
  onProgress?: (elapsedS: number, responses: number) => void
  /** Each 202 with its body and intended send time (performance.now()'s clock): e.g. a client that then polls. */
  onAccepted?: (id: string, body: string, intendedMs: number) => void
}): PaymentLoad {
  const bodyOf = paymentRequestBody(o.mix)
  const result: PaymentLoadClasses = { acked: [], uncertain: [], refused: [], unexpected: [], answers: {}, sent: 0 }
  const count = (key: string): void => { result.answers[key] = (result.answers[key] ?? 0) + 1 }
  const done = runOpenLoop({
    target: { origin: o.stack.publicUrl, apiKey: o.stack.apiKeys.merchant_demo, idPrefix: o.idPrefix },
    rateRps: o.rateRps,
    durationS: o.durationS,
    connections: o.connections ?? paymentLoadConnectionsDefault,
    inflightMax: o.inflightMax ?? paymentLoadInflightMaxDefault,
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    requestBody: (index) => {
      result.sent++
      return bodyOf(index)
    },
    ...(o.onAccepted !== undefined ? { readOkBody: true } : {}),
    onAnswer: (id, status, answer, intendedMs) => {
      const code = status === 202 ? undefined : problemCode(answer)
      count(status === 0 ? 'no answer' : code === undefined ? String(status) : `${status} ${code}`)
      if (status === 202) {
        result.acked.push(id)
        o.onAccepted?.(id, answer ?? '', intendedMs)
      } else if (status === 0 || ((status === 503 || status === 504) && noAnswerCodes.has(code ?? ''))) result.uncertain.push(id)
      else if ((status >= 400 && status <= 499) || (status === 503 && refusedBeforeWriteCodes.has(code ?? ''))) result.refused.push(id)
      else result.unexpected.push({ id, status, body: (answer ?? '').slice(0, 300) })
    },
  }).then((load) => ({ classes: result, load }))
  return { result, done }
}
