// The reconciler daemon, a managed process of the stack: once a day at RECONCILER_DAILY_AT (UTC,
// default 02:00) it reconciles the previous UTC day for every PSP (then reruns a neighbour day
// whose result had pending_settlement rows), retrying a failed day a few times. At start-up it
// catches up on yesterday if today's time has passed and yesterday has no current run.
//
// Env: DATABASE_URL, PSP_BASE_URL, PSP_SECRET_KEY; optional RECONCILER_DAILY_AT (HH:MM UTC),
// RECONCILER_ADMIN_PORT (0 = any), RECONCILER_CATCH_UP (1/0, default 1), RECONCILER_ADMIN_TOKEN.
// Admin port (127.0.0.1): GET /metrics, /healthz, /readyz; POST /admin/reconcile?date=YYYY-MM-DD
// with `Authorization: Bearer <RECONCILER_ADMIN_TOKEN>` runs one date now (409 while another run
// is in progress) and answers its result. A run replaces the day's current result and loads the
// PSP and Postgres, so any local process must not trigger it: without the token it is 401
// `unauthorized`, and with no RECONCILER_ADMIN_TOKEN set it is off (403 `admin_disabled`).

import { createServer, type ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { adminTokenLengthMin, authorizedBy, digestAdminToken } from '../lib/admin-token.ts'
import { createLogger } from '../lib/log.ts'
import { createPool } from './db.ts'
import { isDate } from './dates.ts'
import { ReconcileError } from './errors.ts'
import { reconcilerLimits as limits } from './limits.ts'
import { createReconcilerMetrics } from './metrics.ts'
import { knownPsps, reportSources } from './psp-source.ts'
import { hasCurrentRun, reconcileWithFollowUps, type RunResult, type RunTrigger } from './reconcile.ts'
import { nextRunAt, parseDailyAt, reportDateFor, shouldCatchUp } from './schedule.ts'

const log = createLogger('reconciler')

function required (name: string): string {
  const value = process.env[name]
  if (!value) {
    log.fatal({ variable: name }, `${name} is required`)
    process.exit(78)
  }
  return value
}

const dailyAtText = process.env.RECONCILER_DAILY_AT ?? '02:00'
const dailyAt = parseDailyAt(dailyAtText)
if (dailyAt === undefined) {
  log.fatal({ variable: 'RECONCILER_DAILY_AT', value: dailyAtText }, 'RECONCILER_DAILY_AT must be HH:MM (UTC)')
  process.exit(78)
}
const adminPort = Number(process.env.RECONCILER_ADMIN_PORT ?? '0')
if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65_535) {
  log.fatal({ variable: 'RECONCILER_ADMIN_PORT' }, 'RECONCILER_ADMIN_PORT must be a port number')
  process.exit(78)
}
const catchUp = (process.env.RECONCILER_CATCH_UP ?? '1') !== '0'
const adminToken = process.env.RECONCILER_ADMIN_TOKEN
if (adminToken !== undefined && adminToken !== '' && adminToken.length < adminTokenLengthMin) {
  log.fatal({ variable: 'RECONCILER_ADMIN_TOKEN' }, `RECONCILER_ADMIN_TOKEN must be at least ${adminTokenLengthMin} characters`)
  process.exit(78)
}
const adminTokenDigest = adminToken === undefined || adminToken === '' ? undefined : digestAdminToken(adminToken)

const pool = createPool(required('DATABASE_URL'), (error) => log.warn({ err: error }, 'postgres idle client error'))
// Issue #16: a run per configured PSP (Nimbus with NIMBUS_BASE_URL and NIMBUS_API_KEY).
const sources = reportSources({ baseUrl: required('PSP_BASE_URL'), secretKey: required('PSP_SECRET_KEY') }, process.env)
const metrics = createReconcilerMetrics()
const stopping = new AbortController()
let running: string | undefined

/** One date for every PSP, one run at a time. */
async function reconcileDate (date: string, trigger: RunTrigger): Promise<RunResult[]> {
  if (running !== undefined) throw new Error(`a run is in progress (${running})`)
  running = date
  try {
    const results: RunResult[] = []
    for (const [psp, { source }] of sources) {
      try {
        const runs = await reconcileWithFollowUps({ pool, source, log, signal: stopping.signal }, { psp, date, trigger })
        for (const run of runs) metrics.recordRun(run)
        results.push(...runs)
      } catch (error) {
        metrics.recordError(psp)
        throw error
      }
    }
    return results
  } finally {
    running = undefined
  }
}

/** The scheduled run of one date, retried while it fails (PSP or Postgres down). */
async function scheduledRun (date: string): Promise<void> {
  for (let attempt = 1; attempt <= limits.dailyRunAttemptsMax && !stopping.signal.aborted; attempt++) {
    try {
      await reconcileDate(date, 'schedule')
      return
    } catch (error) {
      if (stopping.signal.aborted) return
      const last = attempt === limits.dailyRunAttemptsMax
      log.error({ err: error, report_date: date, attempt, code: (error as ReconcileError).code, giving_up: last },
        last ? 'scheduled reconciliation failed; giving up until the next day' : 'scheduled reconciliation failed; retrying')
      if (!last) await delay(limits.dailyRunRetryDelayMs, undefined, { signal: stopping.signal }).catch(() => {})
    }
  }
}

async function sleepUntil (atMs: number): Promise<void> {
  for (let left = atMs - Date.now(); left > 0 && !stopping.signal.aborted; left = atMs - Date.now()) {
    await delay(Math.min(left, limits.timerDelayMsMax), undefined, { signal: stopping.signal }).catch(() => {})
  }
}

async function schedule (): Promise<void> {
  if (catchUp) {
    const yesterday = reportDateFor(Date.now())
    let reconciled = false
    try {
      reconciled = await hasCurrentRun(pool, knownPsps[0], yesterday)
    } catch (error) {
      log.warn({ err: error }, 'could not check for a current run of yesterday; catching up')
    }
    if (shouldCatchUp(Date.now(), dailyAt!, reconciled)) {
      log.info({ report_date: yesterday }, 'catching up on yesterday')
      await scheduledRun(yesterday)
    }
  }
  while (!stopping.signal.aborted) {
    const at = nextRunAt(Date.now(), dailyAt!)
    log.info({ next_run_at: new Date(at).toISOString(), report_date: reportDateFor(at) }, 'next scheduled reconciliation')
    await sleepUntil(at)
    if (stopping.signal.aborted) return
    await scheduledRun(reportDateFor(at))
  }
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(text)
}

const admin = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  if (req.method === 'GET' && url.pathname === '/metrics') {
    metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': metrics.registry.contentType })
      res.end(text)
    }, (error: unknown) => sendJson(res, 500, { error: String(error) }))
    return
  }
  if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz')) {
    sendJson(res, 200, { status: 'ok', running: running ?? null })
    return
  }
  if (req.method === 'POST' && url.pathname === '/admin/reconcile') {
    if (adminTokenDigest === undefined) {
      sendJson(res, 403, { error: { code: 'admin_disabled', message: 'set RECONCILER_ADMIN_TOKEN to allow runs on request' } })
      return
    }
    if (!authorizedBy(req.headers.authorization, adminTokenDigest)) {
      log.warn({ path: url.pathname }, 'admin trigger refused: no valid token')
      sendJson(res, 401, { error: { code: 'unauthorized', message: 'Authorization: Bearer <RECONCILER_ADMIN_TOKEN> required' } })
      return
    }
    const date = url.searchParams.get('date') ?? ''
    if (!isDate(date)) {
      sendJson(res, 400, { error: { code: 'bad_args', message: 'date must be YYYY-MM-DD' } })
      return
    }
    if (running !== undefined) {
      sendJson(res, 409, { error: { code: 'run_in_progress', message: `a run is in progress (${running})` } })
      return
    }
    reconcileDate(date, 'admin').then((runs) => sendJson(res, 200, { runs }), (error: unknown) => {
      const code = error instanceof ReconcileError ? error.code : 'internal_error'
      sendJson(res, error instanceof ReconcileError ? 502 : 500, { error: { code, message: (error as Error).message } })
    })
    return
  }
  sendJson(res, 404, { error: { code: 'not_found' } })
})
admin.listen(adminPort, '127.0.0.1', () => {
  const address = admin.address()
  log.info({ admin_port: typeof address === 'object' && address ? address.port : undefined, daily_at: dailyAtText, catch_up: catchUp,
    admin_trigger: adminTokenDigest === undefined ? 'off' : 'token' },
    'reconciler listening')
})

const scheduler = schedule().catch((error: unknown) => {
  log.fatal({ err: error }, 'scheduler failed')
  process.exit(70)
})

let stopped = false
async function stop (): Promise<void> {
  if (stopped) return
  stopped = true
  log.info('reconciler stopping')
  // A run in progress is cut (its download aborts, its transaction rolls back: nothing half-done).
  stopping.abort()
  admin.close()
  await scheduler
  await Promise.allSettled([pool.end(), ...[...sources.values()].map((s) => s.close())])
  process.exit(0)
}
process.on('SIGTERM', () => { void stop() })
process.on('SIGINT', () => { void stop() })
process.on('unhandledRejection', (error) => {
  log.fatal({ err: error }, 'unhandled rejection')
  process.exit(70)
})
