// Small HTTP helpers of the sandbox PSP: JSON answers, PSP-shaped errors, bounded bodies, and
// writing with backpressure for the streamed answers (settlement reports, bulk generation).

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import { PspError } from './errors.ts'

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers)
}

/** An answer already serialised (a charge's stored JSON). */
export function sendJsonText (res: ServerResponse, status: number, payload: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers })
  res.end(payload)
}

export function sendError (res: ServerResponse, error: PspError, requestId: string): void {
  if (res.headersSent) {
    // Mid-stream: the only honest signal left is a broken connection.
    res.destroy()
    return
  }
  const headers: Record<string, string> = { 'request-id': requestId }
  if (error.retryAfterS !== undefined) headers['retry-after'] = String(error.retryAfterS)
  if (error.code === 'body_too_large') headers.connection = 'close'
  sendJson(res, error.status, error.toBody(), headers)
}

/** Reads a UTF-8 body of at most `bytesMax`; throws `body_too_large` past it. */
export function readBody (req: IncomingMessage, bytesMax: number): Promise<string> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > bytesMax) {
    req.resume()
    return Promise.reject(new PspError('body_too_large', { message: `Request body must be at most ${bytesMax} bytes` }))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > bytesMax) {
        req.removeAllListeners('data')
        req.resume()
        reject(new PspError('body_too_large', { message: `Request body must be at most ${bytesMax} bytes` }))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', (error) => reject(error))
  })
}

/** Parses a JSON object body; anything else is `invalid_json`. An empty body is `{}`. */
export function parseJsonObject (text: string): Record<string, unknown> {
  if (text.trim() === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new PspError('invalid_json', { message: `Request body is not valid JSON: ${(error as Error).message.slice(0, 200)}`, cause: error })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PspError('invalid_json')
  return value as Record<string, unknown>
}

export function splitUrl (url: string): { path: string, query: URLSearchParams } {
  const mark = url.indexOf('?')
  if (mark === -1) return { path: url, query: new URLSearchParams() }
  return { path: url.slice(0, mark), query: new URLSearchParams(url.slice(mark + 1)) }
}

/** Checks `Authorization: Bearer <secret>` in constant time (both sides hashed to equal length). */
export function requireSecretKey (req: IncomingMessage, secretKeyDigest: Buffer): void {
  const header = req.headers.authorization
  if (header === undefined || header === '') throw new PspError('authentication_required')
  const match = /^Bearer\s+(\S+)$/i.exec(header)
  if (match === null) throw new PspError('authentication_required')
  if (!timingSafeEqual(digest(match[1]!), secretKeyDigest)) throw new PspError('invalid_api_key')
}

export function digest (secret: string): Buffer {
  return createHash('sha256').update(secret).digest()
}

/**
 * Writes a chunk and, if the stream's buffer is full, waits until it drains. Rejects if the peer
 * goes away, so a producer never keeps reading the database for nobody.
 */
export async function writeWithBackpressure (sink: Writable, chunk: string): Promise<void> {
  if (sink.destroyed) throw new Error('stream closed by the peer')
  if (sink.write(chunk)) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (): void => { cleanup(); reject(new Error('stream closed by the peer')) }
    const cleanup = (): void => {
      sink.off('drain', onDrain)
      sink.off('close', onClose)
      sink.off('error', onClose)
    }
    sink.on('drain', onDrain)
    sink.on('close', onClose)
    sink.on('error', onClose)
  })
}
