// When the daemon runs: once a day at a UTC time of day (RECONCILER_DAILY_AT=HH:MM), for the
// previous UTC day. At start-up, if today's time has passed and yesterday has no current run, it
// runs at once (catch-up after a restart or a deploy across the scheduled time).

import { addDays, dayMs, utcDate } from './dates.ts'

export interface DailyAt {
  hour: number
  minute: number
}

const dailyAtPattern = /^([01]\d|2[0-3]):([0-5]\d)$/

export function parseDailyAt (value: string): DailyAt | undefined {
  const m = dailyAtPattern.exec(value)
  return m === null ? undefined : { hour: Number(m[1]), minute: Number(m[2]) }
}

/** Today's (UTC) scheduled instant, in ms. */
export function scheduledToday (nowMs: number, at: DailyAt): number {
  return Date.parse(`${utcDate(nowMs)}T00:00:00Z`) + (at.hour * 60 + at.minute) * 60_000
}

/** The next scheduled instant strictly after `nowMs`. */
export function nextRunAt (nowMs: number, at: DailyAt): number {
  const today = scheduledToday(nowMs, at)
  return today > nowMs ? today : today + dayMs
}

/** The report date a run at `runAtMs` reconciles: the previous UTC day. */
export function reportDateFor (runAtMs: number): string {
  return addDays(utcDate(runAtMs), -1)
}

/** Whether start-up at `nowMs` should catch up on yesterday (given whether it has a current run). */
export function shouldCatchUp (nowMs: number, at: DailyAt, yesterdayReconciled: boolean): boolean {
  return nowMs >= scheduledToday(nowMs, at) && !yesterdayReconciled
}
