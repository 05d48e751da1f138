// Operators of the console.
//
//   node console/cli.ts create-operator --name NAME --role support|operator|finance [--password-file FILE]
//   node console/cli.ts set-password    --name NAME [--password-file FILE]
//   node console/cli.ts disable         --name NAME
//
// The password is read from --password-file or, without it, from stdin (first line): never from
// the command line, where any user of the machine could read it (ps, /proc). Env: DATABASE_URL
// (the stack's console URL, info file databaseUrls.console, or its admin URL).

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { hashPassword, PasswordPolicyError } from './passwords.ts'
import { consoleRoles, isConsoleRole } from './roles.ts'

const usage = 'usage: cli.ts create-operator --name NAME --role support|operator|finance [--password-file FILE] | set-password --name NAME [--password-file FILE] | disable --name NAME'

async function readPassword (file: string | undefined): Promise<string> {
  const text = file !== undefined ? readFileSync(file, 'utf8') : await new Promise<string>((resolve, reject) => {
    let data = ''
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', (chunk) => { data += chunk })
    process.stdin.on('end', () => resolve(data))
    process.stdin.on('error', reject)
  })
  return text.split(/\r?\n/)[0] ?? ''
}

async function main (): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { name: { type: 'string' }, role: { type: 'string' }, 'password-file': { type: 'string' }, password: { type: 'string' } },
  })
  const command = positionals[0]
  if (values.password !== undefined) {
    console.error('a password on the command line is refused (other users can read it): use --password-file or stdin')
    return 2
  }
  const name = values.name?.trim().toLowerCase()
  if (name === undefined || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name) || !['create-operator', 'set-password', 'disable'].includes(command ?? '')) {
    console.error(usage)
    return 2
  }
  if (command === 'create-operator' && (values.role === undefined || !isConsoleRole(values.role))) {
    console.error(`--role is one of ${consoleRoles.join(', ')}`)
    return 2
  }
  const databaseUrl = process.env.DATABASE_URL
  if (databaseUrl === undefined || databaseUrl === '') {
    console.error('DATABASE_URL is required')
    return 2
  }
  let passwordHash: string | undefined
  if (command !== 'disable') {
    try {
      passwordHash = await hashPassword(await readPassword(values['password-file']))
    } catch (error) {
      if (!(error instanceof PasswordPolicyError)) throw error
      console.error(error.message)
      return 2
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    if (command === 'create-operator') {
      const { rowCount } = await client.query('INSERT INTO console_operators (name, role, password_hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [name, values.role, passwordHash])
      if (rowCount === 0) {
        console.error(`operator ${name} exists already (set-password changes a password)`)
        return 1
      }
    } else if (command === 'set-password') {
      const { rowCount } = await client.query('UPDATE console_operators SET password_hash = $2 WHERE name = $1', [name, passwordHash])
      if (rowCount === 0) {
        console.error(`no operator ${name}`)
        return 1
      }
      // A new password ends the sessions signed in with the old one.
      await client.query('DELETE FROM console_sessions WHERE operator = $1', [name])
    } else {
      const { rowCount } = await client.query('UPDATE console_operators SET disabled_at = now() WHERE name = $1 AND disabled_at IS NULL', [name])
      await client.query('DELETE FROM console_sessions WHERE operator = $1', [name])
      if (rowCount === 0) {
        console.error(`no enabled operator ${name}`)
        return 1
      }
    }
  } finally {
    await client.end()
  }
  console.log(JSON.stringify({ ok: true, command, name, ...(values.role === undefined ? {} : { role: values.role }) }))
  return 0
}

process.exitCode = await main()
