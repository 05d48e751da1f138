// Generic managed child process: spawn with a log file, readiness probe, stop (graceful
// signal, then SIGKILL after a timeout), kill, restart. Every stack component (Postgres,
// Kafka, nginx, payment nodes, and later the CDC relay, processors, sandbox PSP, reconciler)
// is one of these, so the control API can treat them alike.
//
// No orphans:
//  - each child runs in its own process group (detached), so stop/kill reach its whole
//    tree (nginx workers, postgres backends) and a terminal Ctrl-C reaches only the runner,
//    which then stops components in order;
//  - each child is exec'd through `setpriv --pdeathsig KILL` (util-linux) when available,
//    so the kernel kills it even if the runner itself is SIGKILLed;
//  - every live child is tracked and SIGKILLed (process group) on the runner's `exit`.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { say, tailFile, TimeoutError, errorMessage } from './util.ts';

/** SIGTERM (or the component's stop signal) → SIGKILL after this long, unless overridden. */
export const defaultStopTimeoutMs = 15_000;
/** After SIGKILL, how long to wait for the exit to be reported before giving up. */
export const killWaitTimeoutMs = 5_000;
/** Readiness deadline unless the component sets its own. */
export const defaultReadyTimeoutMs = 60_000;

const setprivPath = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ReadyContext {
  /** Aborted when the process exits or the readiness deadline passes. */
  signal: AbortSignal;
  pid: number;
}

export interface ManagedProcessSpec {
  /** Short name used in logs and the control API, e.g. `n1`, `kafka`. */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  /** Full environment for the child (defaults to the runner's). */
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Run as this user (e.g. postgres refuses to run as root). */
  user?: { uid: number; gid: number };
  /** Graceful stop signal. Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
  stopTimeoutMs?: number;
  /** Resolves when the process is ready to serve; polled against readyTimeoutMs and exit. */
  ready?: (ctx: ReadyContext) => Promise<void>;
  readyTimeoutMs?: number;
  /** A one-shot command: exiting is expected, not a crash. */
  oneShot?: boolean;
}

/** The shape every stack component exposes (a process, or a group of them). */
export interface ServiceHandle {
  readonly name: string;
  start(): Promise<void>;
  /** Graceful stop: stop signal, SIGKILL after the stop timeout. */
  stop(): Promise<void>;
  /** SIGKILL now. */
  kill(): Promise<void>;
  status(): ServiceStatus;
}

export interface ServiceStatus {
  name: string;
  running: boolean;
  pid: number | null;
  external?: boolean;
  logFile?: string;
  lastExit?: ExitInfo | null;
  /** Environment overrides of the current/next start (ManagedProcess.setEnvOverrides). */
  envOverrides?: Record<string, string>;
}

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;
let pidFile: string | undefined;

/**
 * Keep `path` updated with the process-group ids of all live children (one per line), so a
 * wrapper that had to SIGKILL the runner can still kill what it started (e.g. nginx workers,
 * which no parent-death signal reaches): `xargs -I{} kill -KILL -- -{} < path`.
 */
export function trackChildrenIn(path: string): void {
  pidFile = path;
  writeLivePidFile();
}

/** Process names a stack child can have (node's main thread is named MainThread). */
const stackChildNames = new Set(['nginx', 'postgres', 'java', 'node', 'MainThread', 'setpriv']);

/**
 * After a runner was SIGKILLed: SIGKILLs the process groups it recorded in `path`, but only
 * groups whose live members all look like stack children (guards against pgid reuse).
 * Returns the pids killed.
 */
export function reapStaleGroups(path: string): number[] {
  let pgids: number[];
  try {
    pgids = readFileSync(path, 'utf8').split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 1);
  } catch {
    return [];
  }
  const members = new Map<number, { pid: number; comm: string }[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may contain spaces, so split after the last ')'.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const group = Number(pgrp);
      if (!pgids.includes(group)) continue;
      members.set(group, [...(members.get(group) ?? []), { pid: Number(entry), comm }]);
    } catch {
      // Exited while we looked.
    }
  }
  const killed: number[] = [];
  for (const [pgid, procs] of members) {
    if (!procs.every((p) => stackChildNames.has(p.comm))) continue;
    signalGroup(pgid, 'SIGKILL');
    killed.push(...procs.map((p) => p.pid));
  }
  return killed;
}

function writeLivePidFile(): void {
  if (!pidFile) return;
  try {
    writeFileSync(pidFile, liveManagedPids().map((p) => `${p}\n`).join(''));
  } catch {
    // Best effort (the dir may be gone during shutdown).
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllManagedSync);
}

/** SIGKILLs the process group of every live managed child. Synchronous: safe in 'exit'. */
export function killAllManagedSync(): void {
  for (const p of live) p.killSync();
}

export function liveManagedPids(): number[] {
  return [...live].flatMap((p) => (p.pid === null ? [] : [p.pid]));
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Group gone already (ESRCH).
  }
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
}

function formatExit(info: ExitInfo): string {
  return info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
}

function openLog(path: string, header: string): number {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a');
  writeSync(fd, `\n=== ${new Date().toISOString()} ${header}\n`);
  return fd;
}

function spawnTracked(spec: ManagedProcessSpec, logFd: number, envOverrides: Readonly<Record<string, string>>): ChildProcess {
  const [command, args] = setprivPath
    ? [setprivPath, ['--pdeathsig', 'KILL', '--', spec.command, ...spec.args]]
    : [spec.command, [...spec.args]];
  return spawn(command, args, {
    cwd: spec.cwd,
    env: { ...(spec.env ?? process.env), ...envOverrides },
    stdio: ['ignore', logFd, logFd],
    detached: true,
    ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}),
  });
}

export class ManagedProcess implements ServiceHandle {
  readonly spec: ManagedProcessSpec;
  #child: ChildProcess | null = null;
  #exited: Promise<ExitInfo> | null = null;
  #lastExit: ExitInfo | null = null;
  /** Set while stop()/kill() is in progress so an expected exit is not logged as a crash. */
  #stopping = false;
  /** Environment on top of spec.env for the next starts (the fault suite restarts a node with a
   *  tiny disk budget this way); empty = the spec's environment. */
  #envOverrides: Readonly<Record<string, string>> = {};

  constructor(spec: ManagedProcessSpec) {
    this.spec = spec;
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  get lastExit(): ExitInfo | null {
    return this.#lastExit;
  }

  /** Resolves when the current process exits (immediately if none is running). */
  exited(): Promise<ExitInfo> {
    return this.#exited ?? Promise.resolve(this.#lastExit ?? { code: null, signal: null });
  }

  status(): ServiceStatus {
    return { name: this.name, running: this.running, pid: this.pid, logFile: this.spec.logFile, lastExit: this.#lastExit, envOverrides: { ...this.#envOverrides } };
  }

  /** Replaces the environment overrides used by the next start(); `{}` restores the spec's. */
  setEnvOverrides(env: Readonly<Record<string, string>>): void {
    this.#envOverrides = { ...env };
  }

  /** Spawns the process and waits until its readiness probe passes. */
  async start(): Promise<void> {
    if (this.#child) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    installExitHook();
    const spec = this.spec;
    const logFd = openLog(spec.logFile, `starting ${spec.name}: ${spec.command} ${spec.args.join(' ')}`);
    let child: ChildProcess;
    try {
      child = spawnTracked(spec, logFd, this.#envOverrides);
    } finally {
      closeSync(logFd);
    }
    const spawned = new Promise<void>((resolveSpawn, rejectSpawn) => {
      child.once('spawn', resolveSpawn);
      child.once('error', rejectSpawn);
    });
    this.#child = child;
    this.#stopping = false;
    live.add(this);
    writeLivePidFile();
    this.#exited = new Promise<ExitInfo>((resolveExit) => {
      child.once('exit', (code, signal) => {
        const info = { code, signal };
        this.#lastExit = info;
        if (this.#child === child) this.#child = null;
        live.delete(this);
        writeLivePidFile();
        // Reap anything the leader left behind in its process group.
        if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
        if (!this.#stopping && !spec.oneShot) say(spec.name, `exited unexpectedly (${formatExit(info)}); log: ${spec.logFile}`);
        resolveExit(info);
      });
    });
    try {
      await spawned;
    } catch (err) {
      live.delete(this);
      writeLivePidFile();
      this.#child = null;
      throw new Error(`${spec.name}: failed to spawn ${spec.command}: ${errorMessage(err)}`);
    }
    if (!spec.ready) return;

    const pid = child.pid as number;
    const abort = new AbortController();
    const readyTimeoutMs = spec.readyTimeoutMs ?? defaultReadyTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const exitedEarly = this.#exited.then((info) => {
      throw new Error(`${spec.name} exited during startup (${formatExit(info)}). Last log lines from ${spec.logFile}:\n${tailFile(spec.logFile)}`);
    });
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new TimeoutError(`${spec.name} not ready after ${readyTimeoutMs} ms. Last log lines from ${spec.logFile}:\n${tailFile(spec.logFile)}`));
      }, readyTimeoutMs);
    });
    try {
      await Promise.race([spec.ready({ signal: abort.signal, pid }), exitedEarly, timedOut]);
    } catch (err) {
      abort.abort();
      await this.kill();
      throw err;
    } finally {
      abort.abort();
      clearTimeout(timer);
      exitedEarly.catch(() => {});
    }
  }

  /** Graceful stop: stop signal to the leader, SIGKILL to the group after stopTimeoutMs. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.pid === undefined) return;
    this.#stopping = true;
    const exited = this.#exited as Promise<ExitInfo>;
    const stopTimeoutMs = this.spec.stopTimeoutMs ?? defaultStopTimeoutMs;
    signalPid(child.pid, this.spec.stopSignal ?? 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), stopTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!graceful) {
      say(this.name, `did not stop within ${stopTimeoutMs} ms; sending SIGKILL`);
      await this.kill();
    }
  }

  /** SIGKILL to the whole process group; waits (bounded) for the exit to be reported. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.pid === undefined) return;
    this.#stopping = true;
    signalGroup(child.pid, 'SIGKILL');
    signalPid(child.pid, 'SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    const reported = await Promise.race([
      (this.#exited as Promise<ExitInfo>).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), killWaitTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!reported) throw new Error(`${this.name} (pid ${child.pid}) did not exit within ${killWaitTimeoutMs} ms of SIGKILL`);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** For the runner's exit hook only. */
  killSync(): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    this.#stopping = true;
    signalGroup(pid, 'SIGKILL');
    signalPid(pid, 'SIGKILL');
  }
}

export interface RunCommandOptions {
  name: string;
  logFile: string;
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  user?: { uid: number; gid: number };
}

/** Runs a one-shot command (initdb, kafka storage format) to completion, with a deadline. */
export async function runCommand(command: string, args: readonly string[], opts: RunCommandOptions): Promise<void> {
  const proc = new ManagedProcess({ name: opts.name, command, args, logFile: opts.logFile, cwd: opts.cwd, env: opts.env, user: opts.user, oneShot: true });
  await proc.start();
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    proc.exited(),
    new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), opts.timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (result === 'timeout') {
    await proc.kill();
    throw new TimeoutError(`${opts.name}: ${command} did not finish within ${opts.timeoutMs} ms. Log: ${opts.logFile}\n${tailFile(opts.logFile)}`);
  }
  if (result.code !== 0) {
    throw new Error(`${opts.name}: ${command} failed (${formatExit(result)}). Last log lines from ${opts.logFile}:\n${tailFile(opts.logFile)}`);
  }
}
