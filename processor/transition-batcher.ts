// Gathers transitions per owning node and sends each node's as one `POST /internal/transitions`.
// One request is in flight per node; what arrives meanwhile goes into the next one (up to
// `itemsPerBatchMax`), the same "send at once when idle, gather while busy" rule as the node's
// group commit, so light traffic pays no wait and heavy traffic pays one HTTP round trip and one
// fsynced batch for many payments instead of one each.
//
// Routing: a batch holds only payments of one node (the node that wrote the event the processor
// is acting on), so nginx's internal listener routes it by its first item's checkout id, through
// the same consistent hash as every other call: the processor never addresses a node itself.

import assert from 'node:assert/strict'

/** What one item's call came back with, as a single call would see it. */
export interface ItemAnswer {
  status: number
  body: any
}

export interface TransitionBatcherOptions {
  itemsPerBatchMax: number
  /** Items waiting for one node; past it a caller is refused (TransitionQueueFull) and retries later. */
  itemsQueuedPerNodeMax: number
  /** Sends one batch; resolves with one answer per item, in order, or rejects for all of them. */
  send: (routingCheckoutId: string, items: ReadonlyArray<Record<string, unknown>>) => Promise<ItemAnswer[]>
}

interface Queued {
  item: Record<string, unknown>
  resolve: (answer: ItemAnswer) => void
  reject: (error: unknown) => void
}

interface NodeQueue {
  waiting: Queued[]
  sending: boolean
}

export class TransitionQueueFull extends Error {
  constructor (nodeId: string) {
    super(`transitions queued for node ${nodeId} reached their bound`)
    this.name = 'TransitionQueueFull'
  }
}

export class TransitionBatcher {
  readonly #options: TransitionBatcherOptions
  readonly #nodes = new Map<string, NodeQueue>()

  constructor (options: TransitionBatcherOptions) {
    assert.ok(options.itemsPerBatchMax >= 1 && options.itemsQueuedPerNodeMax >= options.itemsPerBatchMax)
    this.#options = options
  }

  /** The answer for `item` (a transition body with its `checkout_id`), sent with others for `nodeId`. */
  submit (nodeId: string, item: Record<string, unknown>): Promise<ItemAnswer> {
    let queue = this.#nodes.get(nodeId)
    if (queue === undefined) {
      queue = { waiting: [], sending: false }
      this.#nodes.set(nodeId, queue)
    }
    if (queue.waiting.length >= this.#options.itemsQueuedPerNodeMax) return Promise.reject(new TransitionQueueFull(nodeId))
    const node = queue
    return new Promise((resolve, reject) => {
      node.waiting.push({ item, resolve, reject })
      if (!node.sending) void this.#sendLoop(nodeId, node)
    })
  }

  async #sendLoop (nodeId: string, queue: NodeQueue): Promise<void> {
    queue.sending = true
    try {
      while (queue.waiting.length > 0) {
        const batch = queue.waiting.splice(0, this.#options.itemsPerBatchMax)
        try {
          const answers = await this.#options.send(String(batch[0]!.item.checkout_id), batch.map((q) => q.item))
          for (let i = 0; i < batch.length; i++) batch[i]!.resolve(answers[i]!)
        } catch (error) {
          for (const queued of batch) queued.reject(error)
        }
      }
    } finally {
      queue.sending = false
      if (queue.waiting.length === 0) this.#nodes.delete(nodeId)
    }
  }
}
