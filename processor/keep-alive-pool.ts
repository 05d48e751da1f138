// The processor's HTTP pools (to the nodes through nginx, to each PSP): one construction, so both
// keep connections the same way. Bounded connections, a timeout per phase, idle connections kept
// 30 s (the stack's nginx and sandbox PSPs keep theirs 65 s, so the server is not the one to close
// a connection we are about to reuse), no pipelining (a request never waits behind another's answer).

import { Pool } from 'undici'

/** Idle connections are kept this long. */
export const keepAliveTimeoutMs = 30_000

export interface KeepAlivePoolLimits {
  connectionsMax: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
}

export function keepAlivePool (origin: string, limits: KeepAlivePoolLimits): Pool {
  return new Pool(origin, {
    connections: limits.connectionsMax,
    connectTimeout: limits.connectTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    bodyTimeout: limits.bodyTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    pipelining: 1,
  })
}
