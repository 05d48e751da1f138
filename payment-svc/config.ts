// Payment node configuration from the environment. Anything missing or malformed stops start-up
// with a message that names the variable.

import { InternalServicesError, parseInternalServices, type InternalService } from '../lib/internal-credentials.ts'
import { assertLimits, defaultLimits, type NodeLimits } from './limits.ts'

export interface NodeConfig {
  nodeId: string
  host: string
  /** The public listener's TCP port; unused (0) when publicSocket is set. */
  publicPort: number
  /**
   * RINGPAY_PUBLIC_SOCKET: serve the public API on this Unix socket instead of a TCP port (the
   * local stack: nginx beside the node). Only processes that may open the file (mode 0600, the
   * service user) can reach the node, and the hop costs less than loopback TCP.
   */
  publicSocket?: string
  adminPort: number
  dataDir: string
  apiKeysFile: string
  /** RINGPAY_FIELD_KEYS_FILE: the key ring that seals sensitive fields at rest (outside dataDir). */
  fieldKeysFile: string
  /** SHA-256 digest (hex) of each internal caller's token → its service (RINGPAY_INTERNAL_SERVICES). */
  internalServices: ReadonlyMap<string, InternalService>
  /** Webhook signing secrets by PSP provider name; a provider without one is refused. */
  webhookSecrets: ReadonlyMap<string, string>
  limits: NodeLimits
  /**
   * Peers whose X-Real-IP header names the client (nginx, on this host); from any other peer the
   * socket's address is the client. RINGPAY_TRUSTED_PROXIES, comma-separated IP addresses or `unix`
   * (a connection on the Unix socket); default loopback and `unix`.
   */
  trustedProxies: ReadonlySet<string>
}

export class ConfigError extends Error {
  readonly code = 'config_invalid'
}

function required (env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name]
  if (value === undefined || value === '') throw new ConfigError(`${name} is required`)
  return value
}

function integer (env: NodeJS.ProcessEnv, name: string, fallback: number | undefined, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') {
    if (fallback === undefined) throw new ConfigError(`${name} is required`)
    return fallback
  }
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer within ${min}..${max}, got ${raw}`)
  }
  return value
}

export function loadNodeConfig (env: NodeJS.ProcessEnv): NodeConfig {
  const nodeId = required(env, 'RINGPAY_NODE_ID')
  if (!/^[a-z0-9-]{1,32}$/.test(nodeId)) throw new ConfigError('RINGPAY_NODE_ID must be 1..32 of [a-z0-9-]')
  const internalServices = internalServicesFrom(env)
  const ringCapacity = integer(env, 'RINGPAY_RING_CAPACITY', defaultLimits.ringCapacity, 1, 1 << 20)
  const batchSizeMax = integer(env, 'RINGPAY_BATCH_SIZE_MAX', Math.min(defaultLimits.batchSizeMax, ringCapacity), 1, ringCapacity)
  const limits: NodeLimits = {
    ...defaultLimits,
    ringCapacity,
    batchSizeMax,
    flushIntervalMs: integer(env, 'RINGPAY_FLUSH_INTERVAL_MS', defaultLimits.flushIntervalMs, 0, 100),
    amountMinorMax: integer(env, 'RINGPAY_AMOUNT_MINOR_MAX', defaultLimits.amountMinorMax, 1, Number.MAX_SAFE_INTEGER),
    inflightIdsMax: ringCapacity * 2 + batchSizeMax,
    requestDeadlineMs: integer(env, 'RINGPAY_REQUEST_DEADLINE_MS', defaultLimits.requestDeadlineMs, 1_000, 600_000),
    longPollsPerMerchantMax: integer(env, 'RINGPAY_LONG_POLLS_PER_MERCHANT_MAX', defaultLimits.longPollsPerMerchantMax, 1, defaultLimits.longPollWaitersMax),
    failedKeyAttemptsMax: integer(env, 'RINGPAY_FAILED_KEY_ATTEMPTS_MAX', defaultLimits.failedKeyAttemptsMax, 1, 1_000_000),
    failedKeyWindowMs: integer(env, 'RINGPAY_FAILED_KEY_WINDOW_MS', defaultLimits.failedKeyWindowMs, 1_000, 86_400_000),
    failedKeyTrackedIpsMax: integer(env, 'RINGPAY_FAILED_KEY_TRACKED_IPS_MAX', defaultLimits.failedKeyTrackedIpsMax, 1, 10_000_000),
  }
  assertLimits(limits)
  return {
    nodeId,
    host: env.RINGPAY_HOST ?? '127.0.0.1',
    ...publicListenerFrom(env),
    adminPort: integer(env, 'RINGPAY_ADMIN_PORT', undefined, 1, 65535),
    dataDir: required(env, 'RINGPAY_DATA_DIR'),
    apiKeysFile: required(env, 'RINGPAY_API_KEYS_FILE'),
    fieldKeysFile: required(env, 'RINGPAY_FIELD_KEYS_FILE'),
    internalServices,
    webhookSecrets: webhookSecretsFrom(env),
    limits,
    trustedProxies: trustedProxiesFrom(env),
  }
}

/**
 * `RINGPAY_INTERNAL_SERVICES`: `processor:<sha256 hex of its token>,ops:<hex>,…`. The node holds
 * digests only; each caller holds its own token. The former shared `RINGPAY_INTERNAL_TOKEN` (which
 * nginx added to every request) is no longer read: a node still given only that one stops here.
 */
function internalServicesFrom (env: NodeJS.ProcessEnv): ReadonlyMap<string, InternalService> {
  const raw = env.RINGPAY_INTERNAL_SERVICES
  if (raw === undefined || raw === '') {
    const hint = env.RINGPAY_INTERNAL_TOKEN ? ' (RINGPAY_INTERNAL_TOKEN, one token shared by every caller, is no longer read: see SECURITY.md)' : ''
    throw new ConfigError(`RINGPAY_INTERNAL_SERVICES is required${hint}`)
  }
  try {
    return parseInternalServices(raw)
  } catch (error) {
    if (error instanceof InternalServicesError) throw new ConfigError(`RINGPAY_INTERNAL_SERVICES: ${error.message}`, { cause: error })
    throw error
  }
}

/** `RINGPAY_WEBHOOK_SECRET_<PROVIDER>` → provider (lower case) → secret. */
function webhookSecretsFrom (env: NodeJS.ProcessEnv): Map<string, string> {
  const secrets = new Map<string, string>()
  const prefix = 'RINGPAY_WEBHOOK_SECRET_'
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(prefix) || value === undefined || value === '') continue
    if (value.length < 16) throw new ConfigError(`${name} must be at least 16 characters`)
    secrets.set(name.slice(prefix.length).toLowerCase(), value)
  }
  return secrets
}

/** Longest Unix socket path Linux takes (sun_path is 108 bytes with its terminating NUL). */
export const unixSocketPathBytesMax = 107

/** RINGPAY_PUBLIC_SOCKET (an absolute path) if set, else RINGPAY_PUBLIC_PORT. */
function publicListenerFrom (env: NodeJS.ProcessEnv): { publicPort: number, publicSocket?: string } {
  const socket = env.RINGPAY_PUBLIC_SOCKET
  if (socket === undefined || socket === '') return { publicPort: integer(env, 'RINGPAY_PUBLIC_PORT', undefined, 1, 65535) }
  if (!socket.startsWith('/')) throw new ConfigError(`RINGPAY_PUBLIC_SOCKET must be an absolute path, got ${JSON.stringify(socket)}`)
  if (Buffer.byteLength(socket) > unixSocketPathBytesMax) throw new ConfigError(`RINGPAY_PUBLIC_SOCKET is longer than ${unixSocketPathBytesMax} bytes: ${socket}`)
  return { publicPort: 0, publicSocket: socket }
}

/** The peer name of a connection on the Unix socket (it has no address): nginx, beside the node. */
export const unixSocketPeer = 'unix'

/**
 * Loopback in its three spellings (IPv4, IPv6, IPv4-mapped), and the Unix socket: nginx runs
 * beside the node.
 */
export const defaultTrustedProxies = ['127.0.0.1', '::1', '::ffff:127.0.0.1', unixSocketPeer]

function trustedProxiesFrom (env: NodeJS.ProcessEnv): Set<string> {
  const raw = env.RINGPAY_TRUSTED_PROXIES
  if (raw === undefined || raw === '') return new Set(defaultTrustedProxies)
  const addresses = raw.split(',').map((a) => a.trim()).filter((a) => a !== '')
  for (const a of addresses) {
    if (a !== unixSocketPeer && !/^[0-9A-Fa-f.:]{2,45}$/.test(a)) throw new ConfigError(`RINGPAY_TRUSTED_PROXIES: ${JSON.stringify(a)} is not an IP address or \`${unixSocketPeer}\``)
  }
  // Node reports an IPv4 peer on a dual-stack socket as ::ffff:a.b.c.d.
  return new Set(addresses.flatMap((a) => (a.includes(':') || a === unixSocketPeer ? [a] : [a, `::ffff:${a}`])))
}
