// The table target (b) writes to, and the queries the bench runs against it (create before the
// run, check acknowledged ids after it, drop at the end). One table per run, so a shared
// DATABASE_URL is never touched outside it.

import pg from 'pg'

export const naiveTablePattern = /^[a-z_][a-z0-9_]{0,62}$/
/** Deadline for the connection of each schema/check query (not for the load itself). */
export const naiveSchemaConnectTimeoutMs = 5_000
/** Deadline of each schema/check query (client side). */
export const naiveQueryTimeoutMs = 60_000
/** Ids per `= ANY($1)` lookup when the outcome is checked. */
export const naiveCheckChunkSize = 10_000

/** A bench table's name: created per run, so it must be a plain identifier (it is interpolated). */
export function assertTable (table: string): void {
  if (!naiveTablePattern.test(table)) throw new Error(`bad table name ${JSON.stringify(table)}`)
}

/** One short-lived client for a schema or check query of a bench table (also the monolith's). */
export async function withClient<T> (databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: naiveSchemaConnectTimeoutMs,
    query_timeout: naiveQueryTimeoutMs,
  })
  client.on('error', () => {})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

export function createNaiveTable (databaseUrl: string, table: string): Promise<void> {
  assertTable(table)
  return withClient(databaseUrl, async (client) => {
    await client.query(`CREATE TABLE ${table} (
      checkout_id    text PRIMARY KEY,
      merchant_id    text NOT NULL,
      amount         bigint NOT NULL,
      currency       char(3) NOT NULL,
      payment_method text NOT NULL,
      description    text NOT NULL,
      customer_ref   text NOT NULL,
      metadata       jsonb NOT NULL,
      status         text NOT NULL,
      created_at     timestamptz NOT NULL
    )`)
  })
}

/** Drops a bench table (the naive target's, the monolith's) at the end of a run. */
export function dropBenchTable (databaseUrl: string, table: string): Promise<void> {
  assertTable(table)
  return withClient(databaseUrl, async (client) => { await client.query(`DROP TABLE IF EXISTS ${table}`) })
}

/** How many of `ids` have a row (the primary key makes a second row for one id impossible). */
export function countNaiveRows (databaseUrl: string, table: string, ids: readonly string[]): Promise<number> {
  assertTable(table)
  return withClient(databaseUrl, async (client) => {
    let found = 0
    for (let i = 0; i < ids.length; i += naiveCheckChunkSize) {
      const chunk = ids.slice(i, i + naiveCheckChunkSize)
      const result = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE checkout_id = ANY($1::text[])`, [chunk])
      found += Number(result.rows[0]?.n ?? 0)
    }
    return found
  })
}

export function serverVersion (databaseUrl: string): Promise<string> {
  return withClient(databaseUrl, async (client) => {
    const result = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")
    return result.rows[0]?.v ?? 'unknown'
  })
}
