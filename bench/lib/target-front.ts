// What the e2e bench's own targets (the naive monolith, the async floor) share in front of their
// server: their own nginx (the stack's generator, one worker, the same proxy settings and TLS
// certificate as the stack's public listener), reaching the server on a Unix socket as the
// stack's nginx reaches the payment nodes, and the PSP's webhooks pointed at that nginx while
// (and only while) the target's run goes on.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { writeApiKeysFile } from '../../scripts/stack/api-keys.ts'
import type { StackInfo } from '../../scripts/stack/info.ts'
import { createNginx, type NginxHandle } from '../../scripts/stack/nginx.ts'
import type { ManagedProcess } from '../../scripts/stack/proc.ts'
import { makePassable, serviceUser } from '../../scripts/stack/service-user.ts'

export const pspAdminTimeoutMs = 10_000
/** How often the PSP's pending webhooks are polled while waiting for them to drain. */
export const webhookDrainPollMs = 200

/** What a run of one of these targets gives back, whatever the target. */
export interface OwnTargetRun {
  sent: number
  /** Payments with their final status (the monolith: a 200; the floor: seen by its client), with their latency from the intended send time. */
  finished: number
  latencyMs: Float64Array
  answers: Record<string, number>
  /** All requests answered, and (webhooks 'own') the PSP's webhooks of the run delivered, within the drain deadline. */
  drained: boolean
  /** Webhooks pending at the PSP before the load and at the end of the drain. */
  webhooksPendingBefore: number
  webhooksPendingEnd: number
}

/** The outcome check of one of these targets against the PSP. */
export interface OwnTargetOutcome {
  /** Finished (or acknowledged) with nothing to show for it afterwards. */
  lost: number
  doubleCharges: number
  /** The target's status ≠ the PSP's charge status. */
  mismatches: number
  checkErrors: number
  statuses: Record<string, number>
  examples: string[]
  passed: boolean
}

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

/** The PSP's webhooks not yet delivered (all of them: its count is not per receiver). */
export async function pspWebhooksPending (psp: StackInfo['psp']): Promise<number> {
  return Number((await pspAdmin(psp, 'GET', '/admin/stats')).webhooks.pending)
}

/**
 * Waits until at most `baseline` webhooks are pending at the PSP, or the deadline; returns the
 * count left. The baseline leaves out retries of earlier, refused deliveries (backoff up to 30 s)
 * that have nothing to do with the run being drained.
 */
export async function pspWebhooksDrained (psp: StackInfo['psp'], deadlineMs: number, baseline = 0): Promise<number> {
  for (;;) {
    const pending = await pspWebhooksPending(psp)
    if (pending <= baseline || performance.now() >= deadlineMs) return pending
    await new Promise((resolve) => setTimeout(resolve, webhookDrainPollMs))
  }
}

/** What a fronted server process needs from the target that makes it. */
export interface ServerSpec {
  port: number
  /** The Unix socket its nginx reaches it on. */
  socket: string
  logFile: string
  /** The stack's merchants' keys, written for it. */
  apiKeysFile: string
}

/**
 * A bench target's server behind its own nginx, with the PSP's webhooks pointed at that nginx on
 * request: `name` names its files and its CPU components (`<name> server`, `<name> nginx`).
 */
export class FrontedServer {
  readonly #server: ManagedProcess
  readonly #nginx: NginxHandle
  readonly #psp: StackInfo['psp']
  readonly #ownWebhooks: boolean
  readonly #name: string
  readonly origin: string
  #stackWebhookBaseUrl: string | null = null

  constructor (o: { stack: StackInfo, dir: string, name: string, ownWebhooks: boolean, ports: readonly number[], server: (spec: ServerSpec) => ManagedProcess }) {
    const [serverPort, nginxPort, nginxInternalPort] = o.ports as [number, number, number]
    this.#psp = o.stack.psp
    this.#ownWebhooks = o.ownWebhooks
    this.#name = o.name
    const logsDir = join(o.dir, 'logs')
    mkdirSync(logsDir, { recursive: true })
    const apiKeysFile = join(o.dir, 'api-keys.json')
    writeApiKeysFile(apiKeysFile)
    // Its nginx reaches it on a Unix socket, as the stack's nginx reaches the payment nodes: the
    // targets differ in design, not in the transport of that hop.
    const socket = join(o.dir, `${o.name}.sock`)
    this.#server = o.server({ port: serverPort, socket, logFile: join(logsDir, `${o.name}.log`), apiKeysFile })
    // nginx's workers run as the service user when the bench runs as root: they pass through the
    // bench's private temp dir to the socket (o+x only: nothing in it becomes listable or readable).
    const workerUser = serviceUser()
    if (workerUser) makePassable(o.dir, workerUser)
    this.#nginx = createNginx({
      dir: join(o.dir, 'nginx'), logsDir, logFile: join(logsDir, 'nginx.log'),
      publicPort: nginxPort, internalPort: nginxInternalPort,
      nodeServers: [`unix:${socket}`],
      // TLS like the stack's public listener (the same certificate): clients pay for it on every target.
      publicTls: o.stack.publicTls,
    })
    this.origin = `https://127.0.0.1:${nginxPort}`
  }

  async start (): Promise<void> {
    await this.#server.start()
    await this.#nginx.start()
    this.#stackWebhookBaseUrl = (await pspAdmin(this.#psp, 'GET', '/admin/config')).webhookBaseUrl ?? null
  }

  /** Process group leaders → component name, for CPU accounting. */
  groups (): Map<number, string> {
    const out = new Map<number, string>()
    const server = this.#server.status().pid
    const nginx = this.#nginx.status().pid
    if (server !== null) out.set(server, `${this.#name} server`)
    if (nginx !== null) out.set(nginx, `${this.#name} nginx`)
    return out
  }

  /**
   * The sandbox PSP sends one webhook per charge to a single base URL: true sends them to this
   * target's nginx, false back to the stack. Without ownWebhooks nothing changes (a stack shared
   * with other work: the target's webhooks then reach Ringpay's nodes, which refuse unknown ids,
   * and the PSP retries them).
   */
  async routeWebhooks (toTarget: boolean): Promise<void> {
    if (!this.#ownWebhooks) return
    await pspAdmin(this.#psp, 'PUT', '/admin/config', { webhookBaseUrl: toTarget ? this.origin : this.#stackWebhookBaseUrl })
  }

  /** The PSP's webhooks pending now (the baseline of a run); 0 without ownWebhooks. */
  async webhooksPending (): Promise<number> {
    return this.#ownWebhooks ? pspWebhooksPending(this.#psp) : 0
  }

  /** After a run: waits until no more than `baseline` webhooks are pending, or the deadline; the count left (0 without ownWebhooks). */
  async webhooksDrained (deadlineMs: number, baseline: number): Promise<number> {
    return this.#ownWebhooks ? pspWebhooksDrained(this.#psp, deadlineMs, baseline) : 0
  }

  async stop (): Promise<void> {
    await this.routeWebhooks(false).catch(() => {})
    await this.#nginx.stop().catch(() => {})
    await this.#server.stop().catch(() => {})
  }
}

/** Outcome checks: PSP look-ups at once. */
export const pspCheckConcurrency = 64

/**
 * `lookUp(pool, id)` for every id, `concurrency` at a time over one pool to `origin` (the
 * outcome checks' read-backs); the pool is closed at the end. A look-up that throws is handed to
 * `onError` with its message and the rest go on.
 */
export async function lookUpEach (origin: string, concurrency: number, ids: readonly string[],
  lookUp: (pool: Pool, id: string) => Promise<void>, onError: (id: string, why: string) => void): Promise<void> {
  const pool = new Pool(origin, { connections: concurrency })
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++]!
      try {
        await lookUp(pool, id)
      } catch (error) {
        onError(id, (error as Error).message)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: concurrency }, worker))
  } finally {
    await pool.destroy().catch(() => {})
  }
}

/**
 * Each id's charges at the sandbox PSP (`GET /admin/charges?idempotency_key=<id>`: the targets
 * charge with the checkout id as key), `pspCheckConcurrency` look-ups at a time. `onError` gets
 * the ids whose look-up failed.
 */
export function pspChargesOf (psp: StackInfo['psp'], ids: readonly string[],
  onCharges: (id: string, charges: Array<{ status: string }>) => void, onError: (id: string, why: string) => void): Promise<void> {
  return lookUpEach(psp.url, pspCheckConcurrency, ids, async (pool, id) => {
    const res = await pool.request({
      method: 'GET',
      path: `/admin/charges?idempotency_key=${encodeURIComponent(id)}`,
      headers: { authorization: `Bearer ${psp.secretKey}` },
    })
    const text = await res.body.text()
    if (res.statusCode !== 200) onError(id, `PSP admin answered ${res.statusCode}`)
    else onCharges(id, (JSON.parse(text) as { data: Array<{ status: string }> }).data)
  }, onError)
}
