import t from 'tap'
import { addDays, isDate, isMonth, monthDates, ourWindow } from '../dates.ts'
import { nextRunAt, parseDailyAt, reportDateFor, shouldCatchUp } from '../schedule.ts'

t.test('dates', (t) => {
  t.ok(isDate('2031-02-28'))
  t.notOk(isDate('2031-02-29'))
  t.notOk(isDate('2031-2-28'))
  t.ok(isMonth('2032-02'))
  t.notOk(isMonth('2032-13'))
  t.equal(monthDates('2032-02').length, 29)
  t.equal(monthDates('2031-12').at(-1), '2031-12-31')
  t.equal(addDays('2031-12-31', 1), '2032-01-01')
  t.equal(addDays('2031-03-01', -1), '2031-02-28')
  t.end()
})

t.test('our side of a day is [D 00:00, D+1 00:00) UTC', (t) => {
  const w = ourWindow('2031-03-01')
  t.equal(w.from.toISOString(), '2031-03-01T00:00:00.000Z')
  t.equal(w.to.toISOString(), '2031-03-02T00:00:00.000Z')
  t.end()
})

t.test('daily schedule: next run, report date, catch-up', (t) => {
  const at = parseDailyAt('02:00')!
  t.same(at, { hour: 2, minute: 0 })
  t.equal(parseDailyAt('24:00'), undefined)
  t.equal(parseDailyAt('2:00'), undefined)
  const before = Date.parse('2031-03-05T01:59:59Z')
  const after = Date.parse('2031-03-05T02:00:00Z')
  t.equal(new Date(nextRunAt(before, at)).toISOString(), '2031-03-05T02:00:00.000Z')
  t.equal(new Date(nextRunAt(after, at)).toISOString(), '2031-03-06T02:00:00.000Z', 'strictly after now')
  t.equal(reportDateFor(after), '2031-03-04', 'the previous UTC day')
  t.equal(reportDateFor(Date.parse('2031-01-01T00:30:00Z')), '2030-12-31')
  t.notOk(shouldCatchUp(before, at, false), 'before today\'s time: the schedule will do it')
  t.ok(shouldCatchUp(after, at, false))
  t.notOk(shouldCatchUp(after, at, true), 'already reconciled')
  t.end()
})
