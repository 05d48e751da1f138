// Where settlement reports come from. A ReportSource opens one day's report as a byte stream; the
// reconciler reads it chunk by chunk (never the whole day in memory).
//
// PSPs known to the reconciler: `sandbox` (sandbox-psp/, GET /v1/settlements/<date>.csv with the
// secret key) and `nimbus` (issue #16: nimbus-psp/, GET /v1/reports/settlement/<date>.csv with its
// API key, its own format read into the sandbox's columns here). `--psp all` means every one
// configured.

import { Agent, errors as undiciErrors, request } from 'undici'
import { ReconcileError } from './errors.ts'
import { reconcilerLimits as limits } from './limits.ts'

export const knownPsps = ['sandbox', 'nimbus'] as const
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

/** The connections a report source reads its PSP's report over (bounded, with the reconciler's timeouts). */
function reportAgent (): Agent {
  return new Agent({
    connect: { timeout: limits.pspConnectTimeoutMs },
    headersTimeout: limits.pspHeadersTimeoutMs,
    bodyTimeout: limits.pspBodyIdleTimeoutMs,
    connections: limits.pspConnectionsMax,
  })
}

/** The sandbox PSP's report over HTTP (undici, streamed). */
export function sandboxReportSource (baseUrl: string, secretKey: string): { source: ReportSource, close: () => Promise<void> } {
  const agent = reportAgent()
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

/**
 * Nimbus' report (nimbus-psp/settlement-report.ts: `;`-separated, Merchant Account;Psp Reference;
 * Merchant Reference;Type;Booking Date;Currency;Gross;Commission;Net;Original Reference;
 * Modification Reference) as the lines the reconciler reads (settlement-rows.ts), line by line.
 * Its Merchant Account is the merchant's own (one per merchant of ours: our merchant id); every
 * line it reports is settled (status succeeded).
 */
export async function * nimbusAsSettlementCsv (body: AsyncIterable<Uint8Array | string>, date: string): AsyncGenerator<Buffer> {
  yield Buffer.from('settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference\n')
  let rest = ''
  let header = true
  const convert = (line: string): string => {
    const [merchantAccount, pspReference, reference, type, bookedAt, currency, gross, commission, net, original, modification] = line.split(';')
    const refund = type === 'Refunded'
    return [date, pspReference, reference, merchantAccount, gross, currency, commission, net, 'succeeded', bookedAt, refund ? 'refund' : 'charge',
      refund ? original : '', refund ? modification : ''].join(',') + '\n'
  }
  for await (const chunk of body) {
    rest += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')
    let out = ''
    let newline: number
    while ((newline = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, newline)
      rest = rest.slice(newline + 1)
      if (header) { header = false; continue }
      if (line !== '') out += convert(line)
    }
    if (out !== '') yield Buffer.from(out)
  }
  if (rest !== '' && !header) yield Buffer.from(convert(rest))
}

/** Nimbus' report over HTTP, read into the sandbox's columns (nimbusAsSettlementCsv). */
export function nimbusReportSource (baseUrl: string, apiKey: string): { source: ReportSource, close: () => Promise<void> } {
  const agent = reportAgent()
  const source: ReportSource = async (date, signal) => {
    const url = `${baseUrl.replace(/\/+$/, '')}/v1/reports/settlement/${date}.csv`
    let res
    try {
      res = await request(url, { dispatcher: agent, headers: { 'x-api-key': apiKey, accept: 'text/csv' }, ...(signal ? { signal } : {}) })
    } catch (error) {
      throw unreachable(error, `GET ${url}`)
    }
    if (res.statusCode !== 200) {
      const detail = (await res.body.text().catch(() => '')).slice(0, errorBodyCharsMax)
      throw new ReconcileError('psp_http_status', `GET ${url} answered ${res.statusCode} ${detail}`)
    }
    const body = res.body
    return { body: nimbusAsSettlementCsv(body, date), close: () => { body.destroy() } }
  }
  return { source, close: () => agent.close() }
}

/** The report sources this process has: the sandbox always, Nimbus when NIMBUS_BASE_URL and NIMBUS_API_KEY are set. */
export function reportSources (sandbox: { baseUrl: string, secretKey: string }, env: NodeJS.ProcessEnv): Map<PspName, { source: ReportSource, close: () => Promise<void> }> {
  const sources = new Map<PspName, { source: ReportSource, close: () => Promise<void> }>([['sandbox', sandboxReportSource(sandbox.baseUrl, sandbox.secretKey)]])
  if (env.NIMBUS_BASE_URL && env.NIMBUS_API_KEY) sources.set('nimbus', nimbusReportSource(env.NIMBUS_BASE_URL, env.NIMBUS_API_KEY))
  return sources
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
