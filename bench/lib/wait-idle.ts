// `--wait-idle <s>`: before a measured run, wait (bounded) until processes the bench did not start
// stop using the machine, so a figure worth quoting is not one another workload skewed. Shared by
// the accept and e2e scenarios.

import { cpuShare, cpuSnapshot } from './cpu-usage.ts'

/** How long the machine's load is sampled per probe. */
export const idleProbeMs = 1_000
/** --wait-idle at most: how long the bench may wait for other load on the machine to end. */
export const waitIdleSMax = 3_600
/** CPU (% of one core) spent by processes the bench did not start, above which the machine is not idle. */
export const foreignCpuWarnPct = 20

/** CPU (% of one core) used over idleProbeMs by processes outside `groupNames` (pid/process group → component). */
export async function probeForeignCpuPct (groupNames: ReadonlyMap<number, string>, signal?: AbortSignal): Promise<number> {
  const groups = new Set(groupNames.keys())
  const before = cpuSnapshot(groups)
  await new Promise((resolve) => setTimeout(resolve, idleProbeMs))
  signal?.throwIfAborted()
  return cpuShare(before, cpuSnapshot(groups), groupNames).byComponent.other ?? 0
}

/** Waits up to waitIdleS until other load is gone; returns the last foreign CPU share seen. */
export async function waitForQuiet (o: {
  groupNames: ReadonlyMap<number, string>
  waitIdleS: number
  what: string
  log: (line: string) => void
  signal?: AbortSignal
}): Promise<number> {
  let foreign = await probeForeignCpuPct(o.groupNames, o.signal)
  const deadline = Date.now() + o.waitIdleS * 1000
  while (foreign >= foreignCpuWarnPct && Date.now() < deadline) {
    o.log(`--wait-idle: other processes use ${Math.round(foreign)} % of a core; waiting before ${o.what}`)
    foreign = await probeForeignCpuPct(o.groupNames, o.signal)
  }
  return foreign
}
