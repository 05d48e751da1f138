// Where settlement reports come from. A ReportSource opens one day's report as a byte stream; the
// reconciler reads it chunk by chunk (never the whole day in memory).
//
// PSPs known to the reconciler: `sandbox` (sandbox-psp/, GET /v1/settlements/<date>.csv with the
// secret key). `--psp all` means every one of them.

import { Agent, errors as undiciErrors, request } from 'undici'
import { ReconcileError } from './errors.ts'
import { reconcilerLimits as limits } from './limits.ts'

export const knownPsps = ['sandbox'] as const
export type PspName = (typeof knownPsps)[number]

export function isPspName (value: string): value is PspName {
  return (knownPsps as readonly string[]).includes(value)
}

export interface OpenedReport {
  body: AsyncIterable<Uint8Array>
  /** Stops the download (after an error, or when the caller gives up). */
  close: () => void
}

export type ReportSource = (date: string, signal?: AbortSignal) => Promise<OpenedReport>

/** How much of a refusal's body is kept for the error message. */
const errorBodyCharsMax = 300

export function unreachable (error: unknown, what: string): ReconcileError {
  if (error instanceof ReconcileError) return error
  const reason = error instanceof undiciErrors.BodyTimeoutError
    ? `no data for ${limits.pspBodyIdleTimeoutMs} ms`
    : error instanceof undiciErrors.HeadersTimeoutError
      ? `no answer within ${limits.pspHeadersTimeoutMs} ms`
      : (error as Error)?.message ?? String(error)
  return new ReconcileError('psp_unreachable', `${what}: ${reason}`, { cause: error })
}

/** The sandbox PSP's report over HTTP (undici, streamed). */
export function sandboxReportSource (baseUrl: string, secretKey: string): { source: ReportSource, close: () => Promise<void> } {
  const agent = new Agent({
    connect: { timeout: limits.pspConnectTimeoutMs },
    headersTimeout: limits.pspHeadersTimeoutMs,
    bodyTimeout: limits.pspBodyIdleTimeoutMs,
    connections: limits.pspConnectionsMax,
  })
  const source: ReportSource = async (date, signal) => {
    const url = `${baseUrl.replace(/\/+$/, '')}/v1/settlements/${date}.csv`
    let res
    try {
      res = await request(url, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${secretKey}`, accept: 'text/csv' },
        ...(signal ? { signal } : {}),
      })
    } catch (error) {
      throw unreachable(error, `GET ${url}`)
    }
    if (res.statusCode !== 200) {
      let detail = ''
      try {
        detail = (await res.body.text()).slice(0, errorBodyCharsMax)
      } catch {
        // The status says enough.
      }
      throw new ReconcileError('psp_http_status', `GET ${url} answered ${res.statusCode} ${detail}`)
    }
    return { body: res.body, close: () => { res.body.destroy() } }
  }
  return { source, close: () => agent.close() }
}

/** A report held in memory (tests). */
export function stringReportSource (reports: (date: string) => string): ReportSource {
  return async (date) => {
    const text = reports(date)
    return {
      body: (async function * () { yield Buffer.from(text) })(),
      close: () => {},
    }
  }
}
