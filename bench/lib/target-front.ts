// What the e2e bench's own targets (the naive monolith, the async floor) share in front of their
// server: their own nginx (the stack's generator, one worker, the same proxy settings and TLS
// certificate as the stack's public listener), reaching the server on a Unix socket as the
// stack's nginx reaches the payment nodes, and the PSP's webhooks pointed at that nginx while
// (and only while) the target's run goes on.

import { join } from 'node:path'
import { Pool } from 'undici'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { createNginx, type NginxHandle } from '../../scripts/stack/nginx.ts'
import { makePassable, serviceUser } from '../../scripts/stack/service-user.ts'

export const pspAdminTimeoutMs = 10_000

export async function pspAdmin (psp: StackInfo['psp'], method: 'GET' | 'PUT', path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${psp.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${psp.secretKey}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(pspAdminTimeoutMs),
  })
  if (res.status !== 200) throw new Error(`PSP ${method} ${path}: ${res.status} ${await res.text()}`)
  return res.json()
}

/** The target's nginx in front of `socket` (in `dir`), on the given public and internal ports. */
export function targetNginx (o: { stack: StackInfo, dir: string, logsDir: string, socket: string, publicPort: number, internalPort: number }): NginxHandle {
  // nginx's workers run as the service user when the bench runs as root: they pass through the
  // bench's private temp dir to the socket (o+x only: nothing in it becomes listable or readable).
  const workerUser = serviceUser()
  if (workerUser) makePassable(o.dir, workerUser)
  return createNginx({
    dir: join(o.dir, 'nginx'), logsDir: o.logsDir, logFile: join(o.logsDir, 'nginx.log'),
    publicPort: o.publicPort, internalPort: o.internalPort,
    nodeServers: [`unix:${o.socket}`],
    // TLS like the stack's public listener (the same certificate): clients pay for it on every target.
    publicTls: o.stack.publicTls,
  })
}

/**
 * The sandbox PSP sends one webhook per charge to a single base URL: `point(true)` sends them to
 * the target's nginx, `point(false)` back to the stack. With `own: false` nothing changes (a stack
 * shared with other work: the target's webhooks then reach Ringpay's nodes, which refuse unknown
 * ids, and the PSP retries them).
 */
export class PspWebhookRoute {
  readonly #psp: StackInfo['psp']
  readonly #origin: string
  readonly #own: boolean
  #stackBaseUrl: string | null = null

  constructor (psp: StackInfo['psp'], origin: string, own: boolean) {
    this.#psp = psp
    this.#origin = origin
    this.#own = own
  }

  /** Reads the stack's own webhook URL (once, before any point()). */
  async init (): Promise<void> {
    this.#stackBaseUrl = (await pspAdmin(this.#psp, 'GET', '/admin/config')).webhookBaseUrl ?? null
  }

  async point (toTarget: boolean): Promise<void> {
    if (!this.#own) return
    await pspAdmin(this.#psp, 'PUT', '/admin/config', { webhookBaseUrl: toTarget ? this.#origin : this.#stackBaseUrl })
  }
}

/** Outcome checks: PSP look-ups at once. */
export const pspCheckConcurrency = 64

/**
 * Each id's charges at the sandbox PSP (`GET /admin/charges?idempotency_key=<id>`: the targets
 * charge with the checkout id as key), `pspCheckConcurrency` look-ups at a time. `onError` gets
 * the ids whose look-up failed.
 */
export async function pspChargesOf (psp: StackInfo['psp'], ids: readonly string[],
  onCharges: (id: string, charges: Array<{ status: string }>) => void, onError: (id: string, why: string) => void): Promise<void> {
  const pool = new Pool(psp.url, { connections: pspCheckConcurrency })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++]!
      try {
        const res = await pool.request({
          method: 'GET',
          path: `/admin/charges?idempotency_key=${encodeURIComponent(id)}`,
          headers: { authorization: `Bearer ${psp.secretKey}` },
        })
        const text = await res.body.text()
        if (res.statusCode !== 200) onError(id, `PSP admin answered ${res.statusCode}`)
        else onCharges(id, (JSON.parse(text) as { data: Array<{ status: string }> }).data)
      } catch (error) {
        onError(id, (error as Error).message)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: pspCheckConcurrency }, worker))
  } finally {
    await pool.destroy().catch(() => {})
  }
}
