// Applies state transitions on the payment's owning node, always through nginx's internal
// listener, which routes by the same consistent hash as the public API: the processor never
// guesses which node owns a payment. A transition whose caller knows the payment's node (from the
// change event it acts on) is batched with others for that node (transition-batcher.ts). Every
// call carries the processor service's own token: nginx adds none, and the node records the
// service it names as the transition's actor (SECURITY.md, #17 part 2). A payment is named by its
// merchant and checkout id (`/internal/payments/{merchant_id}/{checkout_id}`, issue #17 part 5);
// nginx routes every call by the X-PAYMENT-CHECKOUT-ID header, the checkout id alone.

import assert from 'node:assert/strict'
import { errors as undiciErrors, type Pool } from 'undici'
import { internalTokenHeader } from '../lib/internal-credentials.ts'
import type { PaymentStatus } from '../lib/payment-codec.ts'
import type { PaymentId } from '../lib/payment-id.ts'
import { tracer } from '../lib/tracing.ts'
import { keepAlivePool } from './keep-alive-pool.ts'
import { TransitionBatcher, TransitionQueueFull, type ItemAnswer } from './transition-batcher.ts'
import { traceNodeTransition } from './traces.ts'

export interface NodePayment {
  checkout_id: string
  merchant_id: string
  status: PaymentStatus
  version: number
  amount: number
  currency: string
  payment_method: string
  description: string
  psp_reference?: string
  failure_code?: string
  /** RFC 3339 (node views carry it). */
  created_at?: string
  /** The node that holds the payment (every node view and change event carries it). */
  node_id?: string
  /** Its refunds (node views carry them; change events are decoded separately). */
  refunds?: NodeRefund[]
  /** Manual capture (issue #14): 'manual', the capture asked for and what was captured. */
  capture_method?: 'automatic' | 'manual'
  amount_to_capture?: number
  amount_captured?: number
  /** Issue #16: the PSP the payment is routed to (absent before its claim, and from before routing). */
  psp_provider?: string
}

export interface TransitionCall {
  to: PaymentStatus
  expectedVersion: number
  actor: string
  pspReference?: string
  failureCode?: string
  failureMessage?: string
  /** false: the node writes the move without a change event (only for the claim, `processing`). */
  publish?: false
  /** With requires_action: the PSP's page where the customer completes the charge. */
  nextActionUrl?: string
  /** The payment's node, when known: the call is then batched with others for that node. */
  nodeId?: string
  /** Issue #16, with `processing` only: the routed PSP (the claim's choice, or a failover's). */
  pspProvider?: string
}

/** A refund's outcome for the node (POST /internal/payments/{merchant_id}/{id}/refunds/{refund_id}/transitions). */
export interface RefundTransitionCall {
  to: 'succeeded' | 'failed'
  actor: string
  pspReference?: string
  failureCode?: string
  failureMessage?: string
}

export interface NodeRefund {
  id: string
  amount: number
  currency: string
  status: 'pending' | 'succeeded' | 'failed'
  psp_reference?: string
}

export const nodeErrorCodes = {
  node_unavailable: { retriable: true },
  node_busy: { retriable: true },
  stale_version: { retriable: false },
  invalid_transition: { retriable: false },
  payment_not_found: { retriable: false },
  node_refused: { retriable: false },
} as const
export type NodeErrorCode = keyof typeof nodeErrorCodes

export class NodeError extends Error {
  readonly code: NodeErrorCode
  readonly retriable: boolean
  readonly currentStatus: PaymentStatus | undefined
  readonly currentVersion: number | undefined

  constructor (code: NodeErrorCode, message: string, options: { currentStatus?: PaymentStatus, currentVersion?: number, cause?: unknown } = {}) {
    super(`${code}: ${message}`, { cause: options.cause })
    this.name = 'NodeError'
    this.code = code
    this.retriable = nodeErrorCodes[code].retriable
    this.currentStatus = options.currentStatus
    this.currentVersion = options.currentVersion
  }
}

export interface NodeClientOptions {
  internalUrl: string
  /** This service's internal API token (RINGPAY_INTERNAL_TOKEN). */
  internalToken: string
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  connectionsMax: number
  /** Batched transitions: items per request (≤ the node's transitionsPerBatchMax), and queued per node. */
  transitionsPerBatchMax: number
  transitionsQueuedPerNodeMax: number
}

/** The internal API's path of a payment: its merchant, then its checkout id. */
function paymentPath (id: PaymentId): string {
  return `/internal/payments/${encodeURIComponent(id.merchant_id)}/${encodeURIComponent(id.checkout_id)}`
}

export class NodeClient {
  readonly #pool: Pool
  readonly #batcher: TransitionBatcher
  readonly #token: string

  constructor (options: NodeClientOptions) {
    this.#token = options.internalToken
    this.#pool = keepAlivePool(options.internalUrl, options)
    this.#batcher = new TransitionBatcher({
      itemsPerBatchMax: options.transitionsPerBatchMax,
      itemsQueuedPerNodeMax: options.transitionsQueuedPerNodeMax,
      send: (routingCheckoutId, items) => this.#sendBatch(routingCheckoutId, items),
    })
  }

  async get (id: PaymentId): Promise<NodePayment> {
    const { status, body } = await this.#call('GET', paymentPath(id), id.checkout_id, undefined)
    if (status === 200) return body as NodePayment
    throw this.#errorFor(status, body)
  }

  async transition (id: PaymentId, call: TransitionCall): Promise<{ applied: boolean, payment: NodePayment }> {
    if (tracer === undefined) return this.#transition(id, call)
    // Issue #18: the claim or the write-back as a span of the payment's trace.
    const startedAt = performance.now()
    try {
      const result = await this.#transition(id, call)
      traceNodeTransition(tracer, id, { to: call.to, startedAt, applied: result.applied, httpStatus: 200, batched: call.nodeId !== undefined })
      return result
    } catch (error) {
      traceNodeTransition(tracer, id, { to: call.to, startedAt, errorCode: (error as NodeError).code ?? 'error', batched: call.nodeId !== undefined })
      throw error
    }
  }

  async #transition (id: PaymentId, call: TransitionCall): Promise<{ applied: boolean, payment: NodePayment }> {
    const payload: Record<string, unknown> = { to: call.to, expected_version: call.expectedVersion, actor: call.actor }
    if (call.pspReference) payload.psp_reference = call.pspReference
    if (call.failureCode) payload.failure_code = call.failureCode
    if (call.failureMessage) payload.failure_message = call.failureMessage.slice(0, 500)
    if (call.publish === false) payload.publish = false
    if (call.nextActionUrl) payload.next_action_url = call.nextActionUrl
    if (call.pspProvider) payload.psp_provider = call.pspProvider
    let answer: ItemAnswer | undefined
    if (call.nodeId !== undefined) {
      answer = await this.#batched(call.nodeId, { merchant_id: id.merchant_id, checkout_id: id.checkout_id, ...payload })
      // A payment the batch's node does not hold (a node id that no longer owns it): ask the way
      // a single call does, routed by its own checkout id.
      if (answer.status === 404) answer = undefined
    }
    answer ??= await this.#call('POST', `${paymentPath(id)}/transitions`, id.checkout_id, payload)
    if (answer.status === 200) return answer.body as { applied: boolean, payment: NodePayment }
    throw this.#errorFor(answer.status, answer.body)
  }

  /**
   * Gives back the charge of a canceled payment the PSP took anyway: the node creates one refund of
   * the whole charge (a repeat answers the same one), which then settles like any refund.
   */
  async refundCanceledCharge (id: PaymentId, pspReference: string, actor: string): Promise<{ created: boolean, refund: NodeRefund }> {
    const answer = await this.#call('POST', `${paymentPath(id)}/refund_canceled_charge`, id.checkout_id, { psp_reference: pspReference, actor })
    if (answer.status === 200) return answer.body as { created: boolean, refund: NodeRefund }
    throw this.#errorFor(answer.status, answer.body)
  }

  /** A refund's outcome; judged on the refund's own status (no expected version). Not batched: refunds are rare. */
  async transitionRefund (id: PaymentId, refundId: string, call: RefundTransitionCall): Promise<{ applied: boolean, refund: NodeRefund }> {
    const payload: Record<string, unknown> = { to: call.to, actor: call.actor }
    if (call.pspReference) payload.psp_reference = call.pspReference
    if (call.failureCode) payload.failure_code = call.failureCode
    if (call.failureMessage) payload.failure_message = call.failureMessage.slice(0, 500)
    const answer = await this.#call('POST', `${paymentPath(id)}/refunds/${encodeURIComponent(refundId)}/transitions`, id.checkout_id, payload)
    if (answer.status === 200) return answer.body as { applied: boolean, refund: NodeRefund }
    throw this.#errorFor(answer.status, answer.body)
  }

  async #batched (nodeId: string, item: Record<string, unknown>): Promise<ItemAnswer> {
    try {
      return await this.#batcher.submit(nodeId, item)
    } catch (error) {
      if (error instanceof TransitionQueueFull) throw new NodeError('node_busy', error.message, { cause: error })
      throw error
    }
  }

  /** One batch for one node: per item, what a single call would have answered. */
  async #sendBatch (routingCheckoutId: string, items: ReadonlyArray<Record<string, unknown>>): Promise<ItemAnswer[]> {
    const { status, body } = await this.#call('POST', '/internal/transitions', routingCheckoutId, { transitions: items })
    // The whole request failed (node down, refused): every item sees what a single call would.
    if (status !== 200) throw this.#errorFor(status, body)
    assert.ok(Array.isArray(body?.results) && body.results.length === items.length, 'a batch answer holds one result per item')
    return body.results.map((result: any) => result?.error !== undefined
      ? { status: Number(result.error.status), body: result.error }
      : { status: 200, body: result })
  }

  async #call (method: 'GET' | 'POST', path: string, checkoutId: string, payload: unknown): Promise<{ status: number, body: any }> {
    try {
      const res = await this.#pool.request({
        path,
        method,
        headers: {
          'x-payment-checkout-id': checkoutId,
          [internalTokenHeader]: this.#token,
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: payload !== undefined ? JSON.stringify(payload) : null,
      })
      const text = await res.body.text()
      let body: unknown
      try {
        body = text.length > 0 ? JSON.parse(text) : undefined
      } catch {
        body = undefined
      }
      return { status: res.statusCode, body }
    } catch (error) {
      const timeout = error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError
      throw new NodeError('node_unavailable', timeout ? 'no answer in time' : (error as Error).message, { cause: error })
    }
  }

  #errorFor (status: number, body: any): NodeError {
    const code = String(body?.code ?? '')
    const current = {
      ...(body?.current_status ? { currentStatus: body.current_status as PaymentStatus } : {}),
      ...(typeof body?.current_version === 'number' ? { currentVersion: body.current_version as number } : {}),
    }
    if (status === 409 && code === 'stale_version') return new NodeError('stale_version', body.detail ?? '', current)
    if (status === 409 && code === 'invalid_transition') return new NodeError('invalid_transition', body.detail ?? '', current)
    if (status === 409 && code === 'idempotency_key_in_use') return new NodeError('node_busy', 'another write for this payment is in flight')
    if (status === 404 && code === 'payment_not_found') return new NodeError('payment_not_found', 'the owning node has no such payment')
    if (status >= 500) return new NodeError('node_unavailable', `answered ${status} ${code}`)
    return new NodeError('node_refused', `answered ${status} ${code}: ${JSON.stringify(body).slice(0, 300)}`)
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}
