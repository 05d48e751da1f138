import t from 'tap'
import { parseCli } from '../cli.ts'
import { emptyCounts } from '../classes.ts'
import type { RunResult } from '../reconcile.ts'
import { exitCodeOf } from '../summary.ts'

const env = { DATABASE_URL: 'postgres://x', PSP_BASE_URL: 'http://psp', PSP_SECRET_KEY: 'sk' }
const now = new Date('2031-04-01T12:00:00Z')

t.test('arguments', (t) => {
  const one = parseCli(['--date', '2031-03-01'], env, now)
  t.match(one, { dates: ['2031-03-01'], psps: ['sandbox'], month: undefined, includeMatched: false, out: /reconciler\/reports\/sandbox-2031-03-01-20310401T120000Z\.csv$/ })
  t.match(parseCli(['--month', '2031-02', '--psp', 'all', '--out', '/tmp/x.csv'], env, now), { month: '2031-02', psps: ['sandbox'], out: '/tmp/x.csv' })
  t.equal((parseCli(['--month', '2031-02'], env, now) as { dates: string[] }).dates.length, 28)
  t.equal(parseCli(['--help'], env, now), 'help')
  const bad: [string[], RegExp][] = [
    [[], /exactly one of --date/],
    [['--date', '2031-03-01', '--month', '2031-03'], /exactly one of --date/],
    [['--date', '2031-02-30'], /is not a date/],
    [['--month', '2031-13'], /is not a month/],
    [['--date', '2031-03-01', '--psp', 'stripe'], /--psp must be one of sandbox, nimbus, all/],
    [['--date', '2031-03-01', '--frobnicate'], /Unknown option/],
  ]
  for (const [args, message] of bad) t.throws(() => parseCli(args, env, now), { code: 'bad_args', message }, args.join(' '))
  t.throws(() => parseCli(['--date', '2031-03-01'], {}, now), { code: 'bad_args', message: /missing environment: DATABASE_URL, PSP_BASE_URL, PSP_SECRET_KEY/ })
  t.end()
})

t.test('exit code: 1 with any discrepancy; pending rows alone are clean', (t) => {
  const run = (discrepancies: number, pending: number): RunResult => ({ discrepancies, pending, counts: { ...emptyCounts(), pending_settlement: pending } } as RunResult)
  t.equal(exitCodeOf([run(0, 0)]), 0)
  t.equal(exitCodeOf([run(0, 5)]), 0)
  t.equal(exitCodeOf([run(0, 0), run(2, 0)]), 1)
  t.end()
})
