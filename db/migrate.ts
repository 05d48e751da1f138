// Applies db/migrations/*.sql in order, each once, each in its own transaction, recorded in
// schema_migrations. An advisory lock keeps two processes (a stack start and a test) from racing.
// Run: `node db/migrate.ts` with DATABASE_URL set; the stack runs it at start.

import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const migrationsDir = fileURLToPath(new URL('./migrations/', import.meta.url))
const migrationLockKey = 0x52494e47 // "RING"
const statementTimeoutMs = 60_000

export interface MigrationResult {
  applied: string[]
  skipped: string[]
}

export async function migrate (databaseUrl: string): Promise<MigrationResult> {
  const client = new pg.Client({ connectionString: databaseUrl, statement_timeout: statementTimeoutMs })
  await client.connect()
  try {
    await client.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name))
    const files = (await readdir(migrationsDir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort()
    const result: MigrationResult = { applied: [], skipped: [] }
    for (const file of files) {
      if (done.has(file)) {
        result.skipped.push(file)
        continue
      }
      const sql = await readFile(migrationsDir + file, 'utf8')
      await client.query('BEGIN')
      try {
        await client.query(sql)
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file])
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK')
        throw new Error(`migration ${file} failed`, { cause: error })
      }
      result.applied.push(file)
    }
    return result
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [migrationLockKey]).catch(() => undefined)
    await client.end()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const databaseUrl = process.env.DATABASE_URL
  if (!databaseUrl) {
    console.error('DATABASE_URL is required')
    process.exit(2)
  }
  const result = await migrate(databaseUrl)
  console.log(JSON.stringify({ msg: 'migrations', ...result }))
}
