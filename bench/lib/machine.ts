// What the results were measured on: a run's figures mean little without the machine.

import { spawnSync } from 'node:child_process'
import { availableParallelism, cpus, release, totalmem } from 'node:os'

/** Deadline of each version/`free` probe. */
const probeTimeoutMs = 5_000

export interface MachineInfo {
  nproc: number
  cpuModel: string
  memTotalGiB: number
  /** `free -h`, verbatim. */
  free: string
  kernel: string
  node: string
  nginx: string
  wrk: string
}

function run (command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: probeTimeoutMs })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim()
}

export function describeMachine (nginxBin: string, wrkBin: string): MachineInfo {
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    free: run('free', ['-h']),
    kernel: release(),
    node: process.version,
    nginx: run(nginxBin, ['-v']).replace(/^nginx version:\s*/, ''),
    // `wrk -v` prints its version line and exits non-zero.
    wrk: run(wrkBin, ['-v']).split('\n')[0] ?? 'unknown',
  }
}
