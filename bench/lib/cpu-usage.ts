// CPU accounting during a load run, from /proc: CPU time of each process the bench started and
// of its direct children or process group (nginx master + workers; Postgres + its backends, which
// each call setsid() and so are found by parent), of the bench process itself (the open-loop
// generator runs in it), and of the whole machine. Two snapshots inside the run's steady window
// give each component's share in % of one CPU (a 2-CPU box has 200 %); `other` is what the
// machine spent on processes the bench did not start — load from elsewhere that skews the run.

import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

/** Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux x86-64). */
const clockTicksPerS = 100

export interface CpuSnapshot {
  atMs: number
  /** Per process of a tracked component: the tracked pid it belongs to (itself, its group's or its parent's) and its CPU ticks (user + system). */
  processes: Map<number, { owner: number, ticks: number }>
  selfUs: number
  /** Machine-wide: busy and total ticks (all CPUs). */
  machineBusyTicks: number
  machineTotalTicks: number
}

function readMachineTicks (): { busy: number, total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.reduce((a, b) => a + b, 0)
  // idle + iowait are not busy.
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  return { busy: total - idle, total }
}

export function cpuSnapshot (groups: ReadonlySet<number>): CpuSnapshot {
  const processes = new Map<number, { owner: number, ticks: number }>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // exited meanwhile
    }
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const pid = Number(entry)
    const ppid = Number(rest[1])
    const pgrp = Number(rest[2])
    const owner = groups.has(pid) ? pid : groups.has(pgrp) ? pgrp : groups.has(ppid) ? ppid : undefined
    if (owner === undefined) continue
    processes.set(pid, { owner, ticks: Number(rest[11]) + Number(rest[12]) })
  }
  const usage = process.cpuUsage()
  const machine = readMachineTicks()
  return {
    atMs: performance.now(),
    processes,
    selfUs: usage.user + usage.system,
    machineBusyTicks: machine.busy,
    machineTotalTicks: machine.total,
  }
}

export interface CpuShare {
  /** % of one CPU, by component name (groups with the same name are summed). */
  byComponent: Record<string, number>
  /** Busy share of the whole machine, in % of one CPU (max = 100 × CPUs). */
  machineBusyPct: number
  cpus: number
  windowS: number
}

export function cpuShare (a: CpuSnapshot, b: CpuSnapshot, names: ReadonlyMap<number, string>): CpuShare {
  const windowS = (b.atMs - a.atMs) / 1000
  const byComponent: Record<string, number> = {}
  const pct = (ticks: number): number => Math.round(((ticks / clockTicksPerS) / windowS) * 1000) / 10
  // Per process: one that started inside the window counts whole; one that exited inside it
  // is missed (short-lived Postgres workers, a little).
  for (const [pid, { owner, ticks }] of b.processes) {
    const before = a.processes.get(pid)
    const used = Math.max(0, ticks - (before?.owner === owner ? before.ticks : 0))
    const name = names.get(owner) ?? `pid ${owner}`
    byComponent[name] = Math.round(((byComponent[name] ?? 0) + pct(used)) * 10) / 10
  }
  byComponent.bench = Math.round(((b.selfUs - a.selfUs) / 1e6 / windowS) * 1000) / 10
  const cpus = availableParallelism()
  const totalTicks = b.machineTotalTicks - a.machineTotalTicks
  const machineBusyPct = totalTicks > 0 ? Math.round(((b.machineBusyTicks - a.machineBusyTicks) / totalTicks) * cpus * 1000) / 10 : 0
  const tracked = Object.values(byComponent).reduce((x, y) => x + y, 0)
  // Kernel work on behalf of tracked processes (softirqs of loopback TCP) can land on other
  // tasks' accounts, so `other` carries a few % even on an idle machine.
  byComponent.other = Math.max(0, Math.round((machineBusyPct - tracked) * 10) / 10)
  return { byComponent, machineBusyPct, cpus, windowS }
}
