// What the results were measured on: a run's figures mean little without the machine.

import { spawnSync } from 'node:child_process'
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs'
import { availableParallelism, cpus, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { percentileSorted } from './stats.ts'

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

/** fsyncs of the disk probe. */
const fsyncProbeCount = 200
/** Bytes written before each fsync (a small LevelDB batch is about this). */
const fsyncProbeBytes = 4_096

export interface FsyncProbe {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/**
 * Latency of write + fsync of a small block in `dir`, the cost each group-committed batch pays:
 * ~0.12 ms on an idle disk of these machines (PERF-NOTES); several ms means another workload
 * is writing to the same disk, and (b) and (c) will look slower than they are.
 */
export function probeFsync (dir: string): FsyncProbe {
  const file = join(dir, 'fsync-probe')
  const fd = openSync(file, 'w')
  const block = Buffer.alloc(fsyncProbeBytes, 0x61)
  const samples = new Float64Array(fsyncProbeCount)
  try {
    for (let i = 0; i < fsyncProbeCount; i++) {
      const start = performance.now()
      writeSync(fd, block)
      fsyncSync(fd)
      samples[i] = performance.now() - start
    }
  } finally {
    closeSync(fd)
    rmSync(file, { force: true })
  }
  samples.sort()
  const round = (v: number): number => Math.round(v * 1000) / 1000
  return {
    count: fsyncProbeCount,
    p50Ms: round(percentileSorted(samples, 50)),
    p99Ms: round(percentileSorted(samples, 99)),
    maxMs: round(samples[samples.length - 1] as number),
  }
}
