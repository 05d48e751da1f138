// Managed processes for the bench's own targets ((a), (b), (d) of accept; the e2e monolith), on the stack's process machinery
// (scripts/stack/proc.ts: own process group, parent-death signal, killed on exit).

import { join } from 'node:path'
import { ManagedProcess } from '../../scripts/stack/proc.ts'
import { pinnedNodeBinary, pollUntil, repoRoot } from '../../scripts/stack/util.ts'

/** Start-up (listening) deadline of one target process. */
export const targetReadyTimeoutMs = 30_000
export const targetReadyPollIntervalMs = 100
export const targetProbeTimeoutMs = 2_000
/** SIGTERM → SIGKILL after this long. */
export const targetStopTimeoutMs = 5_000

const host = '127.0.0.1'

async function healthz (port: number): Promise<true> {
  const res = await fetch(`http://${host}:${port}/healthz`, { signal: AbortSignal.timeout(targetProbeTimeoutMs) })
  await res.body?.cancel()
  if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`)
  return true
}

function targetProcess (name: string, entry: string, port: number, logFile: string, env: Record<string, string>): ManagedProcess {
  return new ManagedProcess({
    name,
    command: pinnedNodeBinary(),
    args: [join(repoRoot, 'bench', 'targets', entry)],
    cwd: repoRoot,
    env: { ...process.env, ...env, BENCH_PORT: String(port) },
    logFile,
    stopSignal: 'SIGTERM',
    stopTimeoutMs: targetStopTimeoutMs,
    readyTimeoutMs: targetReadyTimeoutMs,
    ready: ({ signal }) =>
      pollUntil(`${name} /healthz`, () => healthz(port), { timeoutMs: targetReadyTimeoutMs, intervalMs: targetReadyPollIntervalMs, signal })
        .then(() => {}),
  })
}

export function createNoopProcess (o: { name: string, port: number, logFile: string }): ManagedProcess {
  return targetProcess(o.name, 'noop-server.ts', o.port, o.logFile, {})
}

export function createNaiveProcess (o: {
  name: string
  port: number
  logFile: string
  databaseUrl: string
  table: string
  apiKeysFile: string
}): ManagedProcess {
  return targetProcess(o.name, 'naive-server.ts', o.port, o.logFile, {
    BENCH_DATABASE_URL: o.databaseUrl,
    BENCH_TABLE: o.table,
    BENCH_API_KEYS_FILE: o.apiKeysFile,
  })
}

export function createProbeProcess (o: { name: string, port: number, logFile: string, dataDir: string }): ManagedProcess {
  return targetProcess(o.name, 'probe-server.ts', o.port, o.logFile, { BENCH_DATA_DIR: o.dataDir })
}

export function createMonolithProcess (o: {
  name: string
  port: number
  logFile: string
  databaseUrl: string
  table: string
  apiKeysFile: string
  psp: { url: string, secretKey: string, webhookSecret: string }
  /** Also serve on this Unix socket (BENCH_SOCKET), for its nginx. */
  socket?: string
}): ManagedProcess {
  return targetProcess(o.name, 'monolith-server.ts', o.port, o.logFile, {
    ...(o.socket === undefined ? {} : { BENCH_SOCKET: o.socket }),
    BENCH_DATABASE_URL: o.databaseUrl,
    BENCH_TABLE: o.table,
    BENCH_API_KEYS_FILE: o.apiKeysFile,
    BENCH_PSP_URL: o.psp.url,
    BENCH_PSP_SECRET_KEY: o.psp.secretKey,
    BENCH_PSP_WEBHOOK_SECRET: o.psp.webhookSecret,
  })
}

export function createFloorProcess (o: {
  name: string
  port: number
  logFile: string
  apiKeysFile: string
  psp: { url: string, secretKey: string, webhookSecret: string }
  /** Also serve on this Unix socket (BENCH_SOCKET), for its nginx. */
  socket: string
}): ManagedProcess {
  return targetProcess(o.name, 'async-floor-server.ts', o.port, o.logFile, {
    BENCH_SOCKET: o.socket,
    BENCH_API_KEYS_FILE: o.apiKeysFile,
    BENCH_PSP_URL: o.psp.url,
    BENCH_PSP_SECRET_KEY: o.psp.secretKey,
    BENCH_PSP_WEBHOOK_SECRET: o.psp.webhookSecret,
  })
}
