// Local Postgres for the stack: initdb into the stack dir, run `postgres` bound to
// 127.0.0.1 on a given port (unix socket inside the data dir, fsync on), wait until it
// accepts connections, create database `ringpay`. Skipped entirely when DATABASE_URL is set.
//
// Every connection authenticates with SCRAM-SHA-256, over TCP and the unix socket alike
// (initdb --auth=scram-sha-256; no `trust` line anywhere): the superuser's password is made
// once per cluster, kept in `<dir>/superuser-password` (0600) and only ever put in the admin
// URL (the info file, 0600). The services get roles of their own (db/roles.ts).
//
// Postgres refuses to run as root: when the runner is root, initdb and postgres run as the
// `postgres` system user (created by Debian's postgresql package), and the data dir is
// chowned to it.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { newDatabasePassword, urlWithCredentials } from '../../db/roles.ts';
import { ManagedProcess, runCommand, type ServiceHandle, type ServiceStatus } from './proc.ts';
import { lookupSystemUser, pollUntil, say, errorMessage } from './util.ts';

export const postgresReadyTimeoutMs = 60_000;
export const postgresPollIntervalMs = 200;
export const postgresConnectTimeoutMs = 2_000;
/** SIGINT = fast shutdown (SIGTERM would wait for every client to disconnect). */
export const postgresStopTimeoutMs = 30_000;
export const initdbTimeoutMs = 120_000;
export const externalPostgresReadyTimeoutMs = 15_000;
export const databaseName = 'ringpay';
const superuser = 'postgres';
/** Linux sun_path is 108 bytes including the NUL. */
const unixSocketPathMax = 107;

export interface PostgresOptions {
  /** Directory owned by this component; the cluster lives in `<dir>/data`. */
  dir: string;
  port: number;
  logFile: string;
  /**
   * TCP connections only over TLS 1.2+ with this certificate (issue #17 part 3): the server's own
   * pg_hba (`<dir>/pg_hba.conf`) has `hostssl` lines only, and databaseUrl asks clients to verify
   * the server against caFile (`sslmode=verify-full`). Unset: plain TCP (the accept bench's own).
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** pg_hba when TLS is on: SCRAM everywhere, and no line that takes a TCP connection without TLS. */
const tlsOnlyHba = `# Written by the stack runner at every start (scripts/stack/postgres.ts). TCP only over TLS.
local   all  all                scram-sha-256
hostssl all  all  127.0.0.1/32  scram-sha-256
hostssl all  all  ::1/128       scram-sha-256
`;

export interface PostgresHandle extends ServiceHandle {
  /** The admin (migration) URL of database `ringpay`: the superuser, with its password. */
  readonly databaseUrl: string;
  readonly external: boolean;
  readonly dataDir: string | null;
  readonly logFile: string | null;
}

/** Highest-version Debian Postgres bin dir (/usr/lib/postgresql/<v>/bin), or RINGPAY_PG_BIN_DIR. */
export function findPostgresBinDir(): string {
  const override = process.env.RINGPAY_PG_BIN_DIR;
  if (override) return override;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const best = versions[0];
  if (best === undefined) {
    throw new Error(`no Postgres server found under ${base}/*/bin: run scripts/ensure-deps.sh (installs Debian package postgresql)`);
  }
  return join(base, best, 'bin');
}

async function canConnect(url: string): Promise<true> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: postgresConnectTimeoutMs });
  // A server going away mid-probe emits 'error' on the client; swallow it (the probe fails anyway).
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: postgresConnectTimeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      // Identifier is a constant of this module, not user input.
      await client.query(`CREATE DATABASE ${name}`);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

function superuserPasswordFile(dir: string): string {
  return join(dir, 'superuser-password');
}

/**
 * The cluster's superuser password: read from `<dir>/superuser-password`, or made (random,
 * written 0600) before a first initdb. A cluster without the file predates SCRAM (initdb
 * --auth=trust): it is refused rather than silently left open.
 */
function superuserPassword(dir: string, dataDir: string): string {
  const file = superuserPasswordFile(dir);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(`${dataDir} was initialised without a superuser password (trust authentication, before #17): remove ${dir} to re-create it with SCRAM`);
  }
  mkdirSync(dir, { recursive: true });
  const password = newDatabasePassword();
  writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  return password;
}

/** Every ancestor must be traversable by the postgres user, or initdb/postgres fail obscurely. */
function assertTraversable(dir: string, uid: number, gid: number): void {
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d);
    const ok = st.uid === uid ? (st.mode & 0o100) !== 0 : st.gid === gid ? (st.mode & 0o010) !== 0 : (st.mode & 0o001) !== 0;
    if (!ok) {
      throw new Error(`the postgres user (uid ${uid}) cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}): use a stack dir whose parents are world-traversable, or chmod o+x ${d}`);
    }
    if (d === dirname(d)) return;
  }
}

class ExternalPostgres implements PostgresHandle {
  readonly name = 'postgres';
  readonly external = true;
  readonly dataDir = null;
  readonly logFile = null;
  readonly databaseUrl: string;
  constructor(databaseUrl: string) {
    this.databaseUrl = databaseUrl;
  }
  async start(): Promise<void> {
    await pollUntil('postgres (DATABASE_URL)', () => canConnect(this.databaseUrl), {
      timeoutMs: externalPostgresReadyTimeoutMs,
      intervalMs: postgresPollIntervalMs,
    });
  }
  async stop(): Promise<void> {
    throw new Error('postgres is external (DATABASE_URL); the stack does not manage it');
  }
  async kill(): Promise<void> {
    throw new Error('postgres is external (DATABASE_URL); the stack does not manage it');
  }
  status(): ServiceStatus {
    return { name: this.name, running: true, pid: null, external: true };
  }
}

class LocalPostgres implements PostgresHandle {
  readonly name = 'postgres';
  readonly external = false;
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly #opts: PostgresOptions;
  readonly #binDir: string;
  readonly #user: { uid: number; gid: number } | undefined;
  readonly #proc: ManagedProcess;
  readonly #adminUrl: string;

  constructor(opts: PostgresOptions) {
    this.#opts = opts;
    this.dataDir = join(opts.dir, 'data');
    this.logFile = opts.logFile;
    this.#binDir = findPostgresBinDir();
    const password = superuserPassword(opts.dir, this.dataDir);
    // Role URLs are made from databaseUrl (db/roles.ts urlWithCredentials keeps the query).
    const tlsQuery = opts.tls === undefined ? '' : `?sslmode=verify-full&sslrootcert=${encodeURIComponent(opts.tls.caFile)}`;
    this.databaseUrl = urlWithCredentials(`postgres://127.0.0.1:${opts.port}/${databaseName}${tlsQuery}`, superuser, password);
    this.#adminUrl = urlWithCredentials(`postgres://127.0.0.1:${opts.port}/postgres${tlsQuery}`, superuser, password);
    if (process.getuid?.() === 0) {
      const pgUser = lookupSystemUser('postgres');
      if (!pgUser) throw new Error('running as root, but there is no `postgres` system user to run Postgres as (install Debian package postgresql)');
      this.#user = { uid: pgUser.uid, gid: pgUser.gid };
    }
    const socketPath = join(this.dataDir, `.s.PGSQL.${opts.port}`);
    if (socketPath.length > unixSocketPathMax) {
      throw new Error(`Postgres socket path too long (${socketPath.length} > ${unixSocketPathMax} bytes): ${socketPath}; use a shorter --dir`);
    }
    const adminUrl = this.#adminUrl;
    this.#proc = new ManagedProcess({
      name: 'postgres',
      command: join(this.#binDir, 'postgres'),
      args: [
        '-D', this.dataDir,
        '-p', String(opts.port),
        '-c', 'listen_addresses=127.0.0.1',
        '-c', `unix_socket_directories=${this.dataDir}`,
        '-c', 'fsync=on',
        '-c', 'synchronous_commit=on',
        '-c', 'full_page_writes=on',
        '-c', 'logging_collector=off',
        '-c', 'max_connections=200',
        // A password set by CREATE/ALTER ROLE in plaintext is stored as a SCRAM verifier (the
        // default since Postgres 14, pinned: an md5 verifier could never log in on our scram lines).
        '-c', 'password_encryption=scram-sha-256',
        ...(opts.tls === undefined ? [] : [
          '-c', 'ssl=on',
          '-c', `ssl_cert_file=${join(opts.dir, 'tls', 'server.crt')}`,
          '-c', `ssl_key_file=${join(opts.dir, 'tls', 'server.key')}`,
          '-c', 'ssl_min_protocol_version=TLSv1.2',
          '-c', `hba_file=${join(opts.dir, 'pg_hba.conf')}`,
        ]),
      ],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      logFile: opts.logFile,
      user: this.#user,
      stopSignal: 'SIGINT',
      stopTimeoutMs: postgresStopTimeoutMs,
      readyTimeoutMs: postgresReadyTimeoutMs,
      ready: ({ signal }) =>
        pollUntil('postgres', () => canConnect(adminUrl), { timeoutMs: postgresReadyTimeoutMs, intervalMs: postgresPollIntervalMs, signal }).then(() => {}),
    });
  }

  async #initdbIfNeeded(): Promise<void> {
    if (existsSync(join(this.dataDir, 'PG_VERSION'))) return;
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const pwFile = superuserPasswordFile(this.#opts.dir);
    if (this.#user) {
      chownSync(this.#opts.dir, this.#user.uid, this.#user.gid);
      chownSync(this.dataDir, this.#user.uid, this.#user.gid);
      // initdb runs as the postgres user and reads the password file.
      chownSync(pwFile, this.#user.uid, this.#user.gid);
      assertTraversable(this.dataDir, this.#user.uid, this.#user.gid);
    }
    say('postgres', `initdb ${this.dataDir} (scram-sha-256)`);
    await runCommand(
      join(this.#binDir, 'initdb'),
      // --auth sets both local (unix socket) and host lines of pg_hba.conf; --pwfile keeps the
      // password off the command line (ps) and out of the log.
      ['-D', this.dataDir, `--username=${superuser}`, '--auth=scram-sha-256', `--pwfile=${pwFile}`, '--encoding=UTF8', '--locale=C'],
      { name: 'initdb', logFile: this.#opts.logFile, timeoutMs: initdbTimeoutMs, user: this.#user, env: { ...process.env, LC_ALL: 'C', LANG: 'C' } },
    );
  }

  /**
   * The certificate, key and pg_hba where the server (the postgres user when we are root) reads
   * them: Postgres refuses a key readable by others or owned by another user. Written at every
   * start, so a renewed certificate or an older cluster's initdb pg_hba is replaced.
   */
  #writeTlsFiles(): void {
    const tls = this.#opts.tls;
    if (tls === undefined) return;
    const dir = join(this.#opts.dir, 'tls');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const files: Array<[string, string]> = [[join(dir, 'server.crt'), readFileSync(tls.certFile, 'utf8')], [join(dir, 'server.key'), readFileSync(tls.keyFile, 'utf8')],
      [join(this.#opts.dir, 'pg_hba.conf'), tlsOnlyHba]];
    for (const [path, text] of files) writeFileSync(path, text, { mode: 0o600 });
    for (const path of [dir, ...files.map(([path]) => path)]) {
      chmodSync(path, path === dir ? 0o700 : 0o600);
      if (this.#user) chownSync(path, this.#user.uid, this.#user.gid);
    }
  }

  async start(): Promise<void> {
    await this.#initdbIfNeeded();
    this.#writeTlsFiles();
    await this.#proc.start();
    await ensureDatabase(this.#adminUrl, databaseName);
  }

  async stop(): Promise<void> {
    await this.#proc.stop();
  }

  async kill(): Promise<void> {
    await this.#proc.kill();
  }

  status(): ServiceStatus {
    return { ...this.#proc.status(), external: false };
  }
}

/** A Postgres handle (not started): external when DATABASE_URL is set, else local. */
export function createPostgres(opts: PostgresOptions): PostgresHandle {
  const url = process.env.DATABASE_URL;
  if (url) return new ExternalPostgres(url);
  return new LocalPostgres(opts);
}

/** Creates and starts Postgres. */
export async function startPostgres(opts: PostgresOptions): Promise<PostgresHandle> {
  const handle = createPostgres(opts);
  try {
    await handle.start();
  } catch (err) {
    throw new Error(`postgres failed to start: ${errorMessage(err)}`);
  }
  return handle;
}
