// UTC calendar dates (YYYY-MM-DD) and the day windows of the cut-off rule.

const datePattern = /^\d{4}-\d{2}-\d{2}$/
const monthPattern = /^\d{4}-\d{2}$/
export const dayMs = 86_400_000

/** A real calendar date in YYYY-MM-DD form (2031-02-30 is not). */
export function isDate (value: string): boolean {
  if (!datePattern.test(value)) return false
  const ms = Date.parse(`${value}T00:00:00Z`)
  return Number.isFinite(ms) && new Date(ms).toISOString().startsWith(value)
}

export function isMonth (value: string): boolean {
  return monthPattern.test(value) && isDate(`${value}-01`)
}

/** Start of the UTC day, in ms. */
export function dayStartMs (date: string): number {
  return Date.parse(`${date}T00:00:00Z`)
}

export function addDays (date: string, days: number): string {
  return new Date(dayStartMs(date) + days * dayMs).toISOString().slice(0, 10)
}

/** The UTC date of an instant. */
export function utcDate (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** Every date of a month, in order. */
export function monthDates (month: string): string[] {
  const dates: string[] = []
  for (let d = `${month}-01`; d.startsWith(month); d = addDays(d, 1)) dates.push(d)
  return dates
}

/**
 * Our side of report date D: payments whose success (updated_at of the succeeded payment) is in
 * [from, to) = [D 00:00, D+1 00:00) UTC.
 */
export function ourWindow (date: string): { from: Date, to: Date } {
  return { from: new Date(dayStartMs(date)), to: new Date(dayStartMs(date) + dayMs) }
}
