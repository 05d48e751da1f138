// The fault suite, one command:
//
//   npm run faults -- [--profile short|long] [--only node-kill,kafka-outage] [--stack-info <info.json>]
//                     [--keep-stack]
//
// Without --stack-info it starts its own ephemeral stack (scripts/stack.ts, with the watchdog
// tuned as in scripts/test.sh so dropped webhooks settle in seconds) and stops it at the end.
// Prints the per-fault table, writes faults/results/<UTC timestamp>-<profile>/ (report.json,
// table.md) and exits 1 if any fault broke an invariant.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { StackInfo } from '../scripts/stack/info.ts'
import { fastWatchdogEnv, spawnStack } from '../scripts/stack/spawn-stack.ts'
import { repoRoot } from '../scripts/stack/util.ts'
import { describeSystemOutcome } from '../bench/lib/system-outcome.ts'
import { faultKinds } from './kinds.ts'
import { faultProfiles } from './profiles.ts'
import { answersLine, faultTable } from './report.ts'
import { runFaultSuite } from './suite.ts'
import { trustCaFile } from '../scripts/stack/trust-ca.ts'

const usage = `usage: npm run faults -- [--profile short|long] [--only ${faultKinds.map((k) => k.name).join(',')}]
                          [--stack-info <info.json>] [--keep-stack]
`

async function main (): Promise<number> {
  const { values } = parseArgs({
    options: {
      profile: { type: 'string', default: 'short' },
      only: { type: 'string' },
      'stack-info': { type: 'string' },
      'keep-stack': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(usage)
    return 0
  }
  const profile = faultProfiles[values.profile as keyof typeof faultProfiles]
  if (profile === undefined) {
    process.stderr.write(`unknown profile ${values.profile}\n${usage}`)
    return 2
  }
  const own = values['stack-info'] === undefined
    ? await spawnStack({ env: fastWatchdogEnv, keepDir: values['keep-stack'], log: (line) => process.stderr.write(`[faults] ${line}\n`) })
    : undefined
  const stack = own?.info ?? JSON.parse(readFileSync(values['stack-info']!, 'utf8')) as StackInfo
  trustCaFile(stack.publicCaFile)
  const startedAt = new Date()
  try {
    const rows = await runFaultSuite({
      stack,
      profile,
      ...(values.only !== undefined ? { only: values.only.split(',') } : {}),
      log: (line) => process.stderr.write(`[faults] ${line}\n`),
      onRow: (row) => process.stderr.write(`[faults] ${row.fault}: ${describeSystemOutcome(row.outcome)}\n` +
        row.failures.map((f) => `[faults]   ${f}\n`).join('')),
    })
    const table = faultTable(rows)
    const details = rows.map(answersLine).join('\n')
    process.stdout.write(`\nfault suite, profile ${profile.name} (${profile.rateRps} payments/s, ${profile.repeats} injection(s) per fault):\n\n${table}\n\nanswers seen by clients:\n${details}\n`)
    const dir = join(repoRoot, 'faults', 'results', `${startedAt.toISOString().replaceAll(':', '-').slice(0, 19)}-${profile.name}`)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ profile, startedAt, rows }, null, 2))
    writeFileSync(join(dir, 'table.md'), `${table}\n\n${details}\n`)
    process.stdout.write(`\nwritten: ${dir}\n`)
    return rows.every((r) => r.passed) ? 0 : 1
  } finally {
    await own?.stop()
  }
}

main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`fault suite failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
