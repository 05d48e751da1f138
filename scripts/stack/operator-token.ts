// The operators' token for the admin API (admin/operator-auth.ts): made once per stack dir into
// `<dir>/secrets/operator-token` (0600, owned by the runner's user: when the runner is root the
// services' user cannot read it), kept across restarts so an operator's scripts keep working on
// a persistent stack. The admin service is given only its SHA-256 digest, with the operator's
// name. To replace it: delete the file and restart the stack.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { formatOperators, operatorTokenPrefix } from '../../admin/operator-auth.ts';

export const operatorTokenFileName = 'operator-token';
/** The name the audit lines give changes made with the stack's token. */
export const stackOperatorName = 'operator';

const tokenPattern = new RegExp(`^${operatorTokenPrefix}[A-Za-z0-9_-]{43}$`);

/** A fresh token: the prefix and 32 random bytes, base64url. */
export function newOperatorToken(): string {
  return `${operatorTokenPrefix}${randomBytes(32).toString('base64url')}`;
}

/** The token in `path`, made if missing; a file that holds no token is an error, never replaced silently. */
export function ensureOperatorToken(path: string): string {
  if (!existsSync(path)) {
    const tmp = `${path}.tmp-${process.pid}`;
    rmSync(tmp, { force: true });
    writeFileSync(tmp, `${newOperatorToken()}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  }
  const token = readFileSync(path, 'utf8').trim();
  if (!tokenPattern.test(token)) throw new Error(`${path} does not hold an operator token: delete it to have a new one made`);
  return token;
}

/** The admin service's RINGPAY_ADMIN_OPERATORS for the stack's operator: the name and the digest, never the token. */
export function stackOperatorsSetting(token: string): string {
  return formatOperators([{ name: stackOperatorName, token }]);
}
