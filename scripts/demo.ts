// README quick start #1, step 2: creates a payment through nginx and reads it back.
//
//   node scripts/demo.ts [--info-file .stack/local/info.json]
//
// Needs a running stack (scripts/demo.sh starts one). Exit code 0 when both calls succeed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { StackInfo } from './stack/info.ts';
import { repoRoot } from './stack/util.ts';

export const demoRequestTimeoutMs = 10_000;

const { values } = parseArgs({ options: { 'info-file': { type: 'string' } } });
const infoFile = values['info-file'] ?? process.env.RINGPAY_STACK_INFO ?? join(repoRoot, '.stack', 'local', 'info.json');
let info: StackInfo;
try {
  info = JSON.parse(readFileSync(infoFile, 'utf8')) as StackInfo;
} catch (err) {
  process.stderr.write(`cannot read the stack info file ${infoFile} (is the stack running? scripts/demo.sh starts it): ${(err as Error).message}\n`);
  process.exit(1);
}

const checkoutId = `demo-${randomBytes(6).toString('hex')}`;
const apiKey = info.apiKeys.merchant_demo;
const body = { amount: 1999, currency: 'EUR', payment_method: 'pm_card_visa', description: 'Ringpay demo' };

function show(title: string, method: string, url: string, headers: Record<string, string>, reqBody: unknown, status: number, resText: string): void {
  const shownHeaders = Object.entries(headers).map(([k, v]) => `  ${k}: ${k === 'Authorization' ? v.slice(0, 26) + '…' : v}`);
  let pretty = resText;
  try {
    pretty = JSON.stringify(JSON.parse(resText), null, 2);
  } catch {
    // Not JSON: show as is.
  }
  process.stdout.write(
    [`\n=== ${title}`, `${method} ${url}`, ...shownHeaders, ...(reqBody === undefined ? [] : [`  ${JSON.stringify(reqBody)}`]), `--> ${status}`, pretty, ''].join('\n'),
  );
}

async function call(title: string, method: 'GET' | 'POST', url: string, reqBody?: unknown): Promise<number> {
  const headers: Record<string, string> = {
    'X-PAYMENT-CHECKOUT-ID': checkoutId,
    Authorization: `Bearer ${apiKey}`,
    ...(reqBody === undefined ? {} : { 'Content-Type': 'application/json' }),
  };
  const res = await fetch(url, {
    method,
    headers,
    body: reqBody === undefined ? undefined : JSON.stringify(reqBody),
    signal: AbortSignal.timeout(demoRequestTimeoutMs),
  });
  show(title, method, url, headers, reqBody, res.status, await res.text());
  return res.status;
}

const created = await call('Create a payment (through nginx, routed by the checkout id)', 'POST', `${info.publicUrl}/payments`, body);
const read = await call('Read it back', 'GET', `${info.publicUrl}/payments/${checkoutId}`);
const ok = created >= 200 && created < 300 && read === 200;
process.stdout.write(ok ? `\nDemo OK: payment ${checkoutId} created and read back.\n` : `\nDemo FAILED (create ${created}, read ${read}).\n`);
process.exit(ok ? 0 : 1);
