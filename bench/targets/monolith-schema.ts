// The monolith's table (bench/targets/monolith-server.ts), in the stack's Postgres: created by the
// e2e bench before its first monolith run, dropped at the end, so the stack's own tables are never
// touched. One table per bench invocation.

import { assertTable, withClient } from './naive-schema.ts'

/** Ids per `= ANY($1)` lookup. */
export const monolithQueryChunkIds = 5_000

export function createMonolithTable (databaseUrl: string, table: string): Promise<void> {
  assertTable(table)
  return withClient(databaseUrl, async (client) => {
    await client.query(`CREATE TABLE ${table} (
      checkout_id   text PRIMARY KEY,
      merchant_id   text NOT NULL,
      amount        bigint NOT NULL,
      currency      text NOT NULL,
      status        text NOT NULL,
      psp_reference text,
      created_at    timestamptz NOT NULL DEFAULT now(),
      updated_at    timestamptz NOT NULL DEFAULT now()
    )`)
  })
}

/** Status by checkout id of the rows among `ids`. */
export function monolithStatuses (databaseUrl: string, table: string, ids: readonly string[]): Promise<Map<string, string>> {
  assertTable(table)
  return withClient(databaseUrl, async (client) => {
    const out = new Map<string, string>()
    for (let i = 0; i < ids.length; i += monolithQueryChunkIds) {
      const { rows } = await client.query<{ checkout_id: string, status: string }>(
        `SELECT checkout_id, status FROM ${table} WHERE checkout_id = ANY($1::text[])`, [ids.slice(i, i + monolithQueryChunkIds)])
      for (const r of rows) out.set(r.checkout_id, r.status)
    }
    return out
  })
}
