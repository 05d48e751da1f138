// Responses that are never answered: the charge is on disk, the client waits in vain and times
// out, exactly as when a real PSP charges and the answer is lost. Each is held for
// `timeoutHoldMs` (or until the client gives up), then its connection is destroyed without a byte.

import type { ServerResponse } from 'node:http'

export class HeldResponses {
  readonly #heldMax: number
  readonly #held = new Map<ServerResponse, NodeJS.Timeout>()

  constructor (heldMax: number) {
    this.#heldMax = heldMax
  }

  get size (): number {
    return this.#held.size
  }

  hold (res: ServerResponse, holdMs: number): void {
    // Past the bound, drop the connection at once: to the client it is the same failure, sooner.
    if (this.#held.size >= this.#heldMax || holdMs <= 0) {
      res.destroy()
      return
    }
    const timer = setTimeout(() => res.destroy(), holdMs)
    this.#held.set(res, timer)
    res.once('close', () => {
      clearTimeout(timer)
      this.#held.delete(res)
    })
  }

  /** Shutdown: no held response outlives the process's wish to stop. */
  destroyAll (): void {
    for (const [res, timer] of this.#held) {
      clearTimeout(timer)
      res.destroy()
    }
    this.#held.clear()
  }
}
