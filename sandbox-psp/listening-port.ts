// The port a PSP child process listens on, from its start-up log line (`sandbox PSP listening`,
// with `port`): what a test or bench that starts the PSP as a process with PSP_PORT=0 waits for.

import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

/** Resolves with the port once the child (stdout piped) logs it; rejects past the deadline or if it exits first. */
export function listeningPort (child: ChildProcess, startDeadlineMs: number): Promise<number> {
  const lines = createInterface({ input: child.stdout! })
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the PSP did not start in time')), startDeadlineMs)
    lines.on('line', (line) => {
      let entry: { msg?: string, port?: number }
      try {
        entry = JSON.parse(line)
      } catch {
        return
      }
      if (entry.msg === 'sandbox PSP listening' && entry.port !== undefined) {
        clearTimeout(timer)
        resolve(entry.port)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the PSP exited with ${code} before listening`))
    })
  })
}
