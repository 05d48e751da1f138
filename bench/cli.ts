// The bench tool: one CLI, one module per scenario.
//
//   node bench/cli.ts <scenario> [flags]          (or: npm run bench -- <scenario> [flags])
//   node bench/cli.ts <scenario> --help
//
// Scenarios live in bench/scenarios/<name>.ts and export `scenario` (bench/lib/scenario.ts);
// add one by adding a line to `scenarios` below. Results go to bench/results/<timestamp>-<name>/.

import type { Scenario } from './lib/scenario.ts'
import { UsageError } from './lib/args.ts'

const scenarios: Record<string, { summary: string, load: () => Promise<Scenario> }> = {
  accept: {
    summary: 'POST /payments through one nginx: (a) no-op ceiling, (b) naive Postgres INSERT, (c) payment nodes',
    load: async () => (await import('./scenarios/accept.ts')).scenario,
  },
  e2e: {
    summary: 'whole stack at a fixed rate (clients long-poll to terminal), outcome check; --search: max sustained rate, Ringpay vs the naive monolith',
    load: async () => (await import('./scenarios/e2e.ts')).scenario,
  },
  reporting: {
    summary: 'a day of 1,000,000 payments: page latency and a whole-day CSV export through the reporting API',
    load: async () => (await import('./scenarios/reporting.ts')).scenario,
  },
  recon: {
    summary: 'builds a large settlement day and times the reconciler over it',
    load: async () => (await import('./scenarios/recon.ts')).scenario,
  },
}

function usage (): string {
  const names = Object.entries(scenarios).map(([name, s]) => `  ${name.padEnd(10)} ${s.summary}`)
  return [
    'usage: node bench/cli.ts <scenario> [flags]',
    '       node bench/cli.ts <scenario> --help',
    '',
    'scenarios:',
    ...names,
    '',
  ].join('\n')
}

async function main (): Promise<number> {
  const [name, ...rest] = process.argv.slice(2)
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(usage())
    return name === undefined ? 2 : 0
  }
  const entry = scenarios[name]
  if (entry === undefined) {
    process.stderr.write(`unknown scenario ${JSON.stringify(name)}\n\n${usage()}`)
    return 2
  }
  const scenario = await entry.load()
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(scenario.usage)
    return 0
  }
  try {
    return await scenario.run(rest)
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      process.stderr.write(`${(error as Error).message}\n\n${scenario.usage}`)
      return 2
    }
    throw error
  }
}

// process.exit, not exitCode: a scenario's helpers must not keep the process alive past its end
// (the 'exit' hook of scripts/stack/proc.ts then SIGKILLs anything still running).
main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
