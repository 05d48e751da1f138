// The reconciler's Postgres pool. Session settings go in the startup packet: temp_buffers can only
// be set before a session first touches a temp table, and the staging tables are temp tables.

import pg from 'pg'
import { reconcilerLimits as limits } from './limits.ts'

export function createPool (databaseUrl: string, onIdleError?: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: limits.poolConnectionsMax,
    statement_timeout: limits.statementTimeoutMs,
    connectionTimeoutMillis: limits.connectTimeoutMs,
    idleTimeoutMillis: limits.poolIdleTimeoutMs,
    options: `-c work_mem=${limits.workMemMb}MB -c temp_buffers=${limits.tempBuffersMb}MB -c TimeZone=UTC -c jit=off`,
  })
  // A Postgres restart is reported per query; an idle client's error must not crash the process.
  pool.on('error', onIdleError ?? (() => {}))
  return pool
}
