import t from 'tap'
import { ProblemError } from '../errors.ts'
import { GroupCommitter } from '../group-commit.ts'

function gate (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

t.test('writes at once when idle, batches what queues while a write is in flight', async (t) => {
  const batches: number[][] = []
  let release = gate()
  const committer = new GroupCommitter<number>({
    ringCapacity: 16,
    batchSizeMax: 4,
    flushIntervalMs: 0,
    writeBatch: async (items) => { batches.push(items); await release.promise },
    onWriteFailure: () => t.fail('no failure expected'),
  })
  const first = committer.submit(1)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(batches, [[1]], 'the first write goes alone, without waiting for company')
  const rest = [2, 3, 4, 5, 6, 7].map((n) => committer.submit(n))
  t.equal(committer.depth, 6)
  const firstGate = release
  release = gate()
  firstGate.open()
  await first
  await new Promise((resolve) => setImmediate(resolve))
  t.same(batches[1], [2, 3, 4, 5], 'next batch capped at batchSizeMax, in order')
  release.open()
  await Promise.all(rest)
  t.same(batches[2], [6, 7])
  t.equal(committer.depth, 0)
})

t.test('a full ring answers overloaded at once and queues nothing', async (t) => {
  const hold = gate()
  let written = 0
  const committer = new GroupCommitter<number>({
    ringCapacity: 2,
    batchSizeMax: 2,
    flushIntervalMs: 0,
    writeBatch: async (items) => { written += items.length; await hold.promise },
    onWriteFailure: () => t.fail('no failure expected'),
  })
  const inFlight = committer.submit(0)
  await new Promise((resolve) => setImmediate(resolve))
  const queued = [committer.submit(1), committer.submit(2)]
  const error = await committer.submit(3).catch((e: unknown) => e)
  t.ok(error instanceof ProblemError)
  t.equal((error as ProblemError).code, 'overloaded')
  t.equal((error as ProblemError).retryAfterS, 1)
  hold.open()
  await Promise.all([inFlight, ...queued])
  t.equal(written, 3, 'the refused item was never written')
})

t.test('a failed write rejects the batch and everything queued, and reports it', async (t) => {
  let failures = 0
  const committer = new GroupCommitter<number>({
    ringCapacity: 8,
    batchSizeMax: 8,
    flushIntervalMs: 0,
    writeBatch: async () => { throw new Error('disk on fire') },
    onWriteFailure: () => { failures++ },
  })
  const results = await Promise.allSettled([committer.submit(1), committer.submit(2)])
  t.same(results.map((r) => r.status), ['rejected', 'rejected'])
  t.equal(failures, 1)
  const after = await committer.submit(3).catch((e: unknown) => e)
  t.equal((after as ProblemError).code, 'shutting_down', 'no writes after a failure')
})

t.test('flushIntervalMs lingers for company when set', async (t) => {
  const batches: number[][] = []
  const committer = new GroupCommitter<number>({
    ringCapacity: 16,
    batchSizeMax: 8,
    flushIntervalMs: 20,
    writeBatch: async (items) => { batches.push(items) },
    onWriteFailure: () => t.fail('no failure expected'),
  })
  const first = committer.submit(1)
  await new Promise((resolve) => setTimeout(resolve, 5))
  const second = committer.submit(2)
  await Promise.all([first, second])
  t.same(batches, [[1, 2]])
})
