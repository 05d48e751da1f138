// One bench run's lifetime: a temp dir, the services it started (stopped in phases at the end,
// on an error, or on Ctrl-C/SIGTERM), and an AbortSignal that stops the load generators.
//
// No orphans: every process is a scripts/stack/proc.ts ManagedProcess (own process group,
// parent-death SIGKILL via setpriv, SIGKILLed on this process's exit); close() stops them
// gracefully first, bounded by sessionShutdownTimeoutMs. A second signal, sent at least
// repeatSignalForceAfterMs after the first, kills everything at once.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killAllManagedSync, trackChildrenIn } from '../../scripts/stack/proc.ts'
import { errorMessage, say, withTimeout } from '../../scripts/stack/util.ts'

/** Whole ordered shutdown; past it every child gets SIGKILL. */
export const sessionShutdownTimeoutMs = 60_000
/** A repeated Ctrl-C this long after the first forces SIGKILL (a terminal and a wrapper may both send one). */
export const repeatSignalForceAfterMs = 2_000

interface Stopper {
  name: string
  /** Lower phases stop first. */
  phase: number
  stop: () => Promise<void>
}

export class BenchSession {
  readonly tempDir: string
  readonly #abort = new AbortController()
  readonly #stoppers: Stopper[] = []
  #keepTemp: boolean
  #closing: Promise<void> | undefined
  #firstSignalAt = 0
  #interrupted = false

  constructor (o: { keepTemp: boolean }) {
    this.#keepTemp = o.keepTemp
    this.tempDir = mkdtempSync(join(tmpdir(), 'ringpay-bench-'))
    // Postgres runs as the `postgres` user when we are root: it must be able to enter the dir.
    chmodSync(this.tempDir, 0o755)
    trackChildrenIn(join(this.tempDir, 'children.pgids'))
  }

  get signal (): AbortSignal {
    return this.#abort.signal
  }

  get interrupted (): boolean {
    return this.#interrupted
  }

  /** Keep the temp dir at close() (for diagnosis after a failure); says where it is. */
  keepTemp (): void {
    this.#keepTemp = true
  }

  /** Registers something to stop at the end; lower phases stop first. */
  onStop (name: string, phase: number, stop: () => Promise<void>): void {
    this.#stoppers.push({ name, phase, stop })
  }

  installSignalHandlers (): void {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        const now = Date.now()
        if (this.#interrupted) {
          if (now - this.#firstSignalAt >= repeatSignalForceAfterMs) {
            say('bench', `${signal} again: killing everything now`)
            killAllManagedSync()
            process.exit(130)
          }
          return
        }
        this.#interrupted = true
        this.#firstSignalAt = now
        say('bench', `${signal}: stopping the load and everything the bench started`)
        this.#abort.abort(new Error(`interrupted by ${signal}`))
        void this.close().finally(() => process.exit(130))
      })
    }
  }

  /** Stops everything (idempotent), then removes the temp dir unless kept. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#abort.abort(new Error('bench is closing'))
      try {
        await withTimeout('bench shutdown', this.#stopAll(), sessionShutdownTimeoutMs)
      } catch (error) {
        say('bench', `${errorMessage(error)}; killing what is left`)
      }
      killAllManagedSync()
      if (this.#keepTemp) {
        say('bench', `kept ${this.tempDir}`)
      } else {
        rmSync(this.tempDir, { recursive: true, force: true })
      }
    })()
    return this.#closing
  }

  async #stopAll (): Promise<void> {
    const phases = [...new Set(this.#stoppers.map((s) => s.phase))].sort((a, b) => a - b)
    for (const phase of phases) {
      const inPhase = this.#stoppers.filter((s) => s.phase === phase)
      const results = await Promise.allSettled(inPhase.map((s) => s.stop()))
      results.forEach((r, i) => {
        if (r.status === 'rejected') say('bench', `stopping ${inPhase[i]?.name} failed: ${errorMessage(r.reason)}`)
      })
    }
  }
}
