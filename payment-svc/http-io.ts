// Small HTTP helpers shared by the node's public and internal routes.

import { isUtf8 } from 'node:buffer'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { maskCardNumbers } from '../lib/card-numbers.ts'
import { ProblemError } from './errors.ts'

const jsonContentType = 'application/json'
const problemContentType = 'application/problem+json'

export function sendJson (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const payload = JSON.stringify(body)
  const length = Buffer.byteLength(payload)
  res.writeHead(status, headers === undefined
    ? { 'content-type': jsonContentType, 'content-length': length }
    : { 'content-type': jsonContentType, 'content-length': length, ...headers })
  res.end(payload)
}

/**
 * `/healthz`, `/readyz` (ready only while an API keys file is in force) and `/metrics` of a service
 * that authenticates merchants (reporting, notifier). Answers and returns the route, or returns
 * undefined for any other path.
 */
export async function serveProbes (path: string, res: ServerResponse, probes: { registry: Registry, keysUnavailableReason: () => string | undefined }): Promise<string | undefined> {
  if (path === '/healthz' || path === '/readyz') {
    const ready = path === '/healthz' || probes.keysUnavailableReason() === undefined
    sendJson(res, ready ? 200 : 503, { ok: ready })
    return path
  }
  if (path === '/metrics') {
    const text = await probes.registry.metrics()
    res.writeHead(200, { 'content-type': probes.registry.contentType })
    res.end(text)
    return path
  }
  return undefined
}

export function sendProblem (res: ServerResponse, problem: ProblemError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const payload = JSON.stringify(problem.toBody())
  const headers: Record<string, string | number> = {
    'content-type': problemContentType,
    'content-length': Buffer.byteLength(payload),
  }
  if (problem.retryAfterS !== undefined) headers['retry-after'] = String(problem.retryAfterS)
  // An unread or oversized body leaves the connection in an unknown state: do not reuse it.
  if (problem.code === 'body_too_large' || problem.code === 'request_timeout') headers.connection = 'close'
  res.writeHead(problem.status, headers)
  res.end(payload)
}

export function isJsonContentType (header: string | undefined): boolean {
  if (header === undefined) return false
  const semicolon = header.indexOf(';')
  const type = (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase()
  if (type !== jsonContentType) return false
  if (semicolon === -1) return true
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(header.slice(semicolon))
  return charset === null || charset[1]?.toLowerCase() === 'utf-8'
}

/** Reads a UTF-8 body of at most `bytesMax`; throws `body_too_large` past it, `invalid_json` if it is not UTF-8. */
export function readBody (req: IncomingMessage, bytesMax: number): Promise<string> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > bytesMax) {
    return Promise.reject(new ProblemError('body_too_large', { detail: `at most ${bytesMax} bytes` }))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > bytesMax) {
        req.removeAllListeners('data')
        req.resume()
        reject(new ProblemError('body_too_large', { detail: `at most ${bytesMax} bytes` }))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
      // Decoding would turn invalid bytes into U+FFFD, so what is stored would differ from what was sent.
      if (!isUtf8(body)) {
        reject(new ProblemError('invalid_json', { detail: 'Request body is not valid UTF-8' }))
        return
      }
      resolve(body.toString('utf8'))
    })
    req.on('error', (error) => reject(new ProblemError('request_timeout', { cause: error })))
  })
}

export function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    // V8's message quotes the text around the error: a card number there is masked.
    throw new ProblemError('invalid_json', { detail: maskCardNumbers((error as Error).message).slice(0, 200), cause: error })
  }
}

/** Splits `/a/b?x=1` into path and query without the cost of a full URL parse. */
export function splitUrl (url: string): { path: string, query: URLSearchParams | undefined } {
  const mark = url.indexOf('?')
  if (mark === -1) return { path: url, query: undefined }
  return { path: url.slice(0, mark), query: new URLSearchParams(url.slice(mark + 1)) }
}
