// The stack's local certificate authority and the server certificates it issues (issue #17
// part 3: internal hops run encrypted). Made once per stack dir with the openssl CLI under
// `<dir>/secrets/tls/` (0600 files, owned by the service user like the other secrets) and reused at
// every start; a certificate within `renewBeforeDays` of its end is issued again.
//
// ECDSA P-256 throughout: its handshakes cost a fraction of RSA's on two shared cores. Server
// certificates name their loopback address (and `localhost`) so clients verify the peer as usual
// (Node's checkServerIdentity, Kafka's endpoint identification).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chownSync, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from './util.ts';
import type { ServiceUser } from './service-user.ts';

export const tlsDirName = 'tls';
export const caValidityDays = 3650;
export const serverCertValidityDays = 825;
export const renewBeforeDays = 30;
const dayMs = 86_400_000;

export interface ServerCert {
  /** The private key (PKCS#8 PEM). */
  keyFile: string;
  /** The certificate, PEM. */
  certFile: string;
  /** Key then certificate chain in one PEM file (what Kafka's PEM keystore takes). */
  keyAndChainFile: string;
}

export interface LocalCa {
  dir: string;
  /** The CA certificate, PEM: what clients trust. */
  caFile: string;
  serverCert: (name: string, ipSans: readonly string[]) => ServerCert;
}

function openssl(): string {
  const path = findExecutable('openssl');
  if (!path) throw new Error('openssl not found: run scripts/ensure-deps.sh');
  return path;
}

function run(args: string[]): void {
  execFileSync(openssl(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function ownPrivately(paths: readonly string[], owner: Pick<ServiceUser, 'uid' | 'gid'> | null): void {
  for (const path of paths) if (owner) chownSync(path, owner.uid, owner.gid);
}

function validLongEnough(certFile: string): boolean {
  if (!existsSync(certFile)) return false;
  const cert = new X509Certificate(readFileSync(certFile));
  return Date.parse(cert.validTo) - Date.now() > renewBeforeDays * dayMs;
}

/** The stack's CA under `secretsDir/tls` (a private dir the caller made), made if missing or ending. */
export function ensureLocalCa(secretsDir: string, owner: Pick<ServiceUser, 'uid' | 'gid'> | null): LocalCa {
  const dir = join(secretsDir, tlsDirName);
  execFileSync('mkdir', ['-p', '-m', '700', dir]);
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  if (!existsSync(caKey) || !validLongEnough(caFile)) {
    run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${caKey}.tmp`]);
    run(['req', '-x509', '-new', '-key', `${caKey}.tmp`, '-sha256', '-days', String(caValidityDays), '-subj', '/CN=Ringpay local stack CA',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', `${caFile}.tmp`]);
    renameSync(`${caKey}.tmp`, caKey);
    renameSync(`${caFile}.tmp`, caFile);
    // Certificates of the CA before are not trusted by the new one: issue them again.
    for (const stale of ['kafka']) rmSync(join(dir, `${stale}.crt`), { force: true });
  }
  ownPrivately([caKey, caFile], owner);
  return {
    dir,
    caFile,
    serverCert: (name, ipSans) => {
      if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`bad certificate name ${JSON.stringify(name)}`);
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.crt`);
      const keyAndChainFile = join(dir, `${name}.pem`);
      const sans = ['DNS:localhost', ...ipSans.map((ip) => `IP:${ip}`)].join(',');
      if (!existsSync(keyFile) || !validLongEnough(certFile) || !existsSync(keyAndChainFile) || !certNames(certFile, ipSans)) {
        // PKCS#8 ("BEGIN PRIVATE KEY"): what Kafka's PEM keystore reads unencrypted.
        run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${keyFile}.tmp`]);
        run(['req', '-new', '-key', `${keyFile}.tmp`, '-subj', `/CN=${name}`, '-out', join(dir, `${name}.csr`)]);
        run(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-sha256',
          '-days', String(serverCertValidityDays), '-extensions', 'v3', '-extfile', writeExtFile(dir, name, sans), '-out', `${certFile}.tmp`]);
        renameSync(`${keyFile}.tmp`, keyFile);
        renameSync(`${certFile}.tmp`, certFile);
        rmSync(join(dir, `${name}.csr`), { force: true });
        const pem = readFileSync(keyFile, 'utf8') + readFileSync(certFile, 'utf8') + readFileSync(caFile, 'utf8');
        execFileSync('sh', ['-c', 'umask 077 && cat > "$1"', 'sh', `${keyAndChainFile}.tmp`], { input: pem });
        renameSync(`${keyAndChainFile}.tmp`, keyAndChainFile);
      }
      ownPrivately([keyFile, certFile, keyAndChainFile], owner);
      return { keyFile, certFile, keyAndChainFile };
    },
  };
}

function writeExtFile(dir: string, name: string, sans: string): string {
  const path = join(dir, `${name}.ext`);
  execFileSync('sh', ['-c', 'umask 077 && cat > "$1"', 'sh', path], {
    input: `[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`,
  });
  return path;
}

/** Whether the certificate names every loopback address asked for (a changed host gets a new one). */
function certNames(certFile: string, ipSans: readonly string[]): boolean {
  const cert = new X509Certificate(readFileSync(certFile));
  return ipSans.every((ip) => cert.checkIP(ip) !== undefined);
}
