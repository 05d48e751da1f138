// CPU spent by each component of a running stack (scripts/stack.ts), for the e2e scenario's
// "CPU per payment": the runner records the process group of every child it starts in
// <stack dir>/children.pgids; each group is named by its command line.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const componentPatterns: ReadonlyArray<[string, RegExp]> = [
  ['payment nodes', /payment-svc\/main\.ts/],
  ['processors', /processor\/main\.ts/],
  ['sandbox PSP', /sandbox-psp\/main\.ts/],
  ['reconciler', /reconciler\/main\.ts/],
  ['reporting', /reporting\/main\.ts/],
  ['Prometheus', /\/prometheus /],
  ['Kafka', /java/],
  ['PostgreSQL', /postgres/],
  ['nginx', /nginx/],
]

/** Process groups of the stack's children, by component name (groups that exited are skipped). */
export function stackProcessGroups (stackDir: string): Map<number, string> {
  const file = join(stackDir, 'children.pgids')
  const groups = new Map<number, string>()
  if (!existsSync(file)) return groups
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const pgid = Number(line.trim())
    if (!Number.isInteger(pgid) || pgid <= 0) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${pgid}/cmdline`, 'utf8').replaceAll('\0', ' ')
    } catch {
      continue
    }
    const name = componentPatterns.find(([, re]) => re.test(cmdline))?.[0] ?? 'other stack'
    groups.set(pgid, name)
  }
  return groups
}
