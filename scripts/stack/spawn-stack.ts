// Starts the whole local stack (scripts/stack.ts --ephemeral) as a child process and waits for
// its info file, for tools that need a stack of their own (the fault suite, the bench's e2e
// scenario). stop() stops it gracefully (the runner stops everything it started).
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StackInfo } from './info.ts';
import { ManagedProcess } from './proc.ts';
import { pinnedNodeBinary, pollUntil, repoRoot } from './util.ts';

export const spawnedStackReadyTimeoutMs = 300_000;
export const spawnedStackReadyPollIntervalMs = 250;
/** The runner's own ordered shutdown is bounded at 120 s. */
export const spawnedStackStopTimeoutMs = 150_000;

/** The watchdog settings scripts/test.sh uses: stuck payments are looked at after 3 s, not 30 s. */
export const fastWatchdogEnv = { PROCESSOR_WATCHDOG_STALE_AFTER_MS: '3000', PROCESSOR_WATCHDOG_INTERVAL_MS: '500' };

export interface SpawnedStack {
  info: StackInfo;
  dir: string;
  stop(): Promise<void>;
}

export async function spawnStack(o: { args?: readonly string[]; env?: Record<string, string>; keepDir?: boolean; log?: (line: string) => void } = {}): Promise<SpawnedStack> {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-stack-'));
  // Postgres runs as the `postgres` user when we are root: it must be able to enter the dir.
  chmodSync(dir, 0o755);
  const infoFile = join(dir, 'info.json');
  const runner = new ManagedProcess({
    name: 'stack',
    command: pinnedNodeBinary(),
    args: [join(repoRoot, 'scripts', 'stack.ts'), '--ephemeral', '--dir', join(dir, 'stack'), '--info-file', infoFile, ...(o.args ?? [])],
    cwd: repoRoot,
    env: { ...process.env, ...o.env },
    logFile: join(dir, 'stack.log'),
    stopSignal: 'SIGTERM',
    stopTimeoutMs: spawnedStackStopTimeoutMs,
    readyTimeoutMs: spawnedStackReadyTimeoutMs,
    ready: ({ signal }) =>
      pollUntil('stack info file', async () => (existsSync(infoFile) ? true : undefined), {
        timeoutMs: spawnedStackReadyTimeoutMs, intervalMs: spawnedStackReadyPollIntervalMs, signal,
      }).then(() => {}),
  });
  o.log?.(`starting a stack (log: ${join(dir, 'stack.log')})`);
  await runner.start();
  return {
    info: JSON.parse(readFileSync(infoFile, 'utf8')) as StackInfo,
    dir,
    stop: async () => {
      await runner.stop();
      if (o.keepDir === true) o.log?.(`stack dir kept: ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}
