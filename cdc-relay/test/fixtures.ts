// Test fixtures: a real node store in a temp dir, written through the real PaymentService (so the
// change log is exactly what production writes), and a fake EventProducer that simulates a
// partitioned topic with failures, lost acknowledgements and partial writes.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { EventBusError, type EventBusErrorCode, type EventMessage, type EventProducer, type PublishOptions } from '../../lib/event-bus.ts'
import type { Logger } from '../../lib/log.ts'
import { defaultLimits } from '../../payment-svc/limits.ts'
import { PaymentService } from '../../payment-svc/payment-service.ts'
import { PaymentStore } from '../../payment-svc/store.ts'
import { packEvents, type PackedEvents } from '../handoff.ts'
import { defaultRelayLimits, type RelayLimits } from '../limits.ts'
import { testKeyRing } from '../../test/helpers/field-keys.ts'

export const silentLog: Logger = pino({ level: 'silent' })

export const testRequest = {
  amount: 1999,
  currency: 'EUR',
  paymentMethod: 'pm_card_visa',
  description: 'relay test',
  customerRef: '',
  metadata: {},
}

export interface TestNode {
  dir: string
  store: PaymentStore
  service: PaymentService
  /** Called after every committed batch with the new next_sequence and the batch's packed values. */
  onCommitted: (listener: (nextSequence: number, events: PackedEvents | undefined) => void) => void
  createPayments: (ids: readonly string[]) => Promise<void>
  close: () => Promise<void>
}

export async function openTestNode (nodeId = 'n-test'): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-relay-test-'))
  const store = new PaymentStore(join(dir, 'data'), { sealer: testKeyRing })
  await store.open(nodeId, Date.now())
  const listeners: Array<(nextSequence: number, events: PackedEvents | undefined) => void> = []
  const service = new PaymentService(nodeId, store, defaultLimits, {
    // As the relay host does: the values packed into one buffer.
    onChangeEventsCommitted: (committed) => {
      const packed = packEvents(committed.firstSequence, committed.events, defaultRelayLimits.handoffBytesMax)
      for (const listener of listeners) listener(store.meta.nextSequence, packed)
    },
    onWriteFailure: (error) => { throw error },
  })
  return {
    dir,
    store,
    service,
    onCommitted: (listener) => { listeners.push(listener) },
    createPayments: async (ids) => {
      await Promise.all(ids.map((id) => service.create('merchant_demo', id, testRequest, Date.now())))
    },
    close: async () => {
      if (store.db.status === 'open') await store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export function testLimits (overrides: Partial<RelayLimits> = {}): RelayLimits {
  return { ...defaultRelayLimits, publishPacingMs: 0, publishLightPacingMs: 0, publishProjectionOnlyLingerMs: 0, retryBackoffBaseMs: 1, retryBackoffMaxMs: 8, ...overrides }
}

export interface StoredMessage extends EventMessage {
  partition: number
}

/** What the fake producer does with the next publish call. */
export type PublishFault =
  /** Nothing written; rejects. */
  | { kind: 'fail', code: EventBusErrorCode }
  /** Everything written, but the acknowledgement is lost: rejects. */
  | { kind: 'lost_ack' }
  /** Only the partitions for which `writes(partition)` is true are written; rejects. */
  | { kind: 'partial', writes: (partition: number) => boolean }
  /** Waits for `release` before answering (a publish in flight). */
  | { kind: 'hold', release: Promise<void> }

function partitionOf (key: string, partitions: number): number {
  let h = 0
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0
  return h % partitions
}

export class FakeProducer implements EventProducer {
  readonly partitions: StoredMessage[][]
  readonly calls: Array<{ topic: string, messages: readonly EventMessage[], options: PublishOptions }> = []
  readonly faults: PublishFault[] = []
  closed = false

  constructor (partitionCount = 8) {
    this.partitions = Array.from({ length: partitionCount }, () => [])
  }

  async publish (topic: string, messages: readonly EventMessage[], options: PublishOptions): Promise<void> {
    this.calls.push({ topic, messages, options })
    if (this.closed) throw new EventBusError('closed', 'producer is closed', { retriable: false })
    const fault = this.faults.shift()
    if (fault?.kind === 'hold') await fault.release
    if (fault?.kind === 'fail') throw new EventBusError(fault.code, 'simulated failure', { retriable: true })
    for (const message of messages) {
      const partition = partitionOf(message.key, this.partitions.length)
      if (fault?.kind === 'partial' && !fault.writes(partition)) continue
      // Copy, as a broker would: later changes to the caller's buffers must not show here.
      this.partitions[partition]!.push({ ...message, value: Uint8Array.from(message.value), partition })
    }
    if (fault?.kind === 'lost_ack' || fault?.kind === 'partial') {
      throw new EventBusError('timeout', 'simulated lost acknowledgement', { retriable: true })
    }
  }

  async close (): Promise<void> {
    this.closed = true
  }

  /** Every stored message, partition by partition, keeping the first copy of each event id. */
  dedupedByPartition (): StoredMessage[][] {
    return this.partitions.map((messages) => {
      const seen = new Set<string>()
      return messages.filter((m) => {
        const id = m.headers['event-id']!
        if (seen.has(id)) return false
        seen.add(id)
        return true
      })
    })
  }

  get storedCount (): number {
    return this.partitions.reduce((sum, p) => sum + p.length, 0)
  }
}

/** Resolves when `condition` holds, checking after each macrotask; fails after `deadlineMs`. */
export async function until (condition: () => boolean, deadlineMs: number, what: string): Promise<void> {
  const until = Date.now() + deadlineMs
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}
