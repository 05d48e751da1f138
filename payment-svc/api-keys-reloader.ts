// When and how a node (re)loads its API keys, and what it logs about it. Triggers: start-up,
// SIGHUP, `POST /admin/reload-keys`, a change of the file (its size, mtime or inode, polled every
// pollIntervalMs: a key issued or revoked with scripts/api-keys.ts is in force on every node
// within seconds, nobody signals anything), and, while the keys are unavailable, a retry timer, so a
// repaired file is picked up even if nobody signals the node. A failed load leaves the node with
// no keys (api-keys.ts: fail closed). Logs name the file, the reason and the key count, never a
// key or a digest.

import { stat } from 'node:fs/promises'
import type { Logger } from '../lib/log.ts'
import { ApiKeysError, type ApiKeyRegistry, type ApiKeysUnavailableReason } from './api-keys.ts'

export type ApiKeysReloadTrigger = 'start' | 'signal' | 'admin' | 'retry' | 'file_changed'

export type ApiKeysReloadOutcome =
  | { ok: true, keys: number }
  | { ok: false, reason: ApiKeysUnavailableReason, message: string }

export interface ApiKeysReloader {
  reload: (trigger: ApiKeysReloadTrigger) => Promise<ApiKeysReloadOutcome>
  stop: () => void
}

export function createApiKeysReloader (registry: ApiKeyRegistry, log: Logger, opts: {
  /** While the keys are unavailable, the file is read again this often. */
  retryIntervalMs: number
  /** The file is looked at (one stat) this often, and read again when it changed; 0 = never. */
  pollIntervalMs?: number
  /** Called after every load attempt, whatever its trigger (tests count the retries with it). */
  onChange?: (available: boolean, keys: number) => void
}): ApiKeysReloader {
  let retryTimer: NodeJS.Timeout | undefined
  let pollTimer: NodeJS.Timeout | undefined
  let stopped = false
  /** The file as last seen by the poll; a rename (the atomic way to write it) changes the inode. */
  let seen: string | undefined
  const fingerprint = async (): Promise<string> => {
    try {
      const s = await stat(registry.path, { bigint: true })
      return `${s.ino}:${s.size}:${s.mtimeNs}`
    } catch (error) {
      return `missing:${(error as NodeJS.ErrnoException).code ?? 'error'}`
    }
  }
  let polling = false
  const poll = async (): Promise<void> => {
    if (polling || stopped) return
    polling = true
    try {
      const now = await fingerprint()
      const changed = seen !== undefined && now !== seen
      seen = now
      if (changed) await reload('file_changed')
    } finally {
      polling = false
    }
  }
  if ((opts.pollIntervalMs ?? 0) > 0) {
    void fingerprint().then((first) => { seen ??= first })
    pollTimer = setInterval(() => { void poll() }, opts.pollIntervalMs)
    pollTimer.unref()
  }

  const scheduleRetry = (): void => {
    if (retryTimer !== undefined || stopped) return
    retryTimer = setInterval(() => { void reload('retry') }, opts.retryIntervalMs)
    retryTimer.unref()
  }
  const cancelRetry = (): void => {
    clearInterval(retryTimer)
    retryTimer = undefined
  }

  const reload = async (trigger: ApiKeysReloadTrigger): Promise<ApiKeysReloadOutcome> => {
    const wasUnavailable = registry.unavailableReason
    try {
      const keys = await registry.reload()
      cancelRetry()
      // A retry that finds the file still fine is not news; anything else is.
      if (trigger !== 'retry' || wasUnavailable !== undefined) log.info({ keys, trigger, file: registry.path }, 'api keys loaded')
      opts.onChange?.(true, keys)
      return { ok: true, keys }
    } catch (error) {
      const reason = error instanceof ApiKeysError ? error.reason : 'unreadable'
      const message = error instanceof ApiKeysError ? error.message : 'cannot load the api keys file'
      // The retry timer repeats the same failure every few seconds: log it only when it changes.
      if (trigger !== 'retry' || wasUnavailable !== reason) {
        log.error({ err: error, reason, trigger, file: registry.path },
          'api keys unavailable: every API key is refused (503 api_keys_unavailable) until a valid keys file is loaded')
      }
      opts.onChange?.(false, 0)
      scheduleRetry()
      return { ok: false, reason, message }
    }
  }

  return {
    reload,
    stop: () => {
      stopped = true
      cancelRetry()
      clearInterval(pollTimer)
    },
  }
}
