// README quick start #1, step 2: registers a webhook endpoint on a small local receiver (issue
// #15, the notifier), creates payments through nginx, follows them to their outcome, refunds part
// of the one that succeeded (issue #14), and shows the signed event the receiver got, verified.
//
//   node scripts/demo.ts [--info-file .stack/local/info.json]
//
// Needs a running stack (scripts/demo.sh starts one). Exit code 0 when every step ends as expected.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { StackInfo } from './stack/info.ts';
import { repoRoot } from './stack/util.ts';
import { signatureHeader, verifyWebhookSignature } from '../lib/webhook-signature.ts';
import { trustCaFile } from './stack/trust-ca.ts';

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
// The public API is https with a certificate of the stack's own CA.
trustCaFile(info.publicCaFile);

const apiKey = info.apiKeys.merchant_demo;
/** A long-poll returns as soon as the payment changes; the demo waits at most this for each step. */
export const demoLongPollMs = 10_000;
const terminal = new Set(['succeeded', 'failed', 'canceled']);

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

async function call(title: string, checkoutId: string, method: 'GET' | 'POST', url: string, reqBody?: unknown,
  extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {
    'X-PAYMENT-CHECKOUT-ID': checkoutId,
    Authorization: `Bearer ${apiKey}`,
    ...(reqBody === undefined ? {} : { 'Content-Type': 'application/json' }),
    ...extraHeaders,
  };
  const res = await fetch(url, {
    method,
    headers,
    body: reqBody === undefined ? undefined : JSON.stringify(reqBody),
    signal: AbortSignal.timeout(demoRequestTimeoutMs + demoLongPollMs),
  });
  const text = await res.text();
  show(title, method, url, headers, reqBody, res.status, text);
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}

/** Creates a payment, then follows it with long-polls until it is terminal. */
async function follow(label: string, paymentMethod: string, expected: string): Promise<{ ok: boolean; checkoutId: string; payment: any }> {
  const checkoutId = `demo-${randomBytes(6).toString('hex')}`;
  const body = { amount: 1999, currency: 'EUR', payment_method: paymentMethod, description: `Ringpay demo: ${label}` };
  const created = await call(`${label}: create (202 once fsynced on its node)`, checkoutId, 'POST', `${info.publicUrl}/payments`, body);
  if (created.status !== 202) return { ok: false, checkoutId, payment: created.body };
  let payment = created.body;
  const deadline = Date.now() + 3 * demoLongPollMs;
  while (!terminal.has(payment?.status) && Date.now() < deadline) {
    const next = await call(`${label}: long-poll for the next change`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${payment.version}`);
    if (next.status !== 200) return { ok: false, checkoutId, payment: next.body };
    payment = next.body;
  }
  const ok = payment?.status === expected;
  process.stdout.write(`${ok ? 'OK' : 'UNEXPECTED'}: ${checkoutId} went pending → ${payment?.status} (expected ${expected})\n`);
  return { ok, checkoutId, payment };
}

/** Refunds part of a succeeded payment, then long-polls the payment until the refund is settled. */
async function refundPart(checkoutId: string, payment: any, amount: number): Promise<boolean> {
  const label = 'A partial refund';
  const refund = await call(`${label}: request (202 once fsynced; Idempotency-Key makes a retry safe)`, checkoutId, 'POST',
    `${info.publicUrl}/payments/${checkoutId}/refunds`, { amount, reason: 'demo: one item returned' }, { 'Idempotency-Key': `demo-refund-${checkoutId}` });
  if (refund.status !== 202) return false;
  let current = payment;
  let settled: any = refund.body;
  const deadline = Date.now() + 3 * demoLongPollMs;
  while (settled?.status === 'pending' && Date.now() < deadline) {
    const next = await call(`${label}: long-poll the payment for the refund's outcome`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${current.version}`);
    if (next.status !== 200) return false;
    current = next.body;
    settled = current.refunds?.find((r: any) => r.id === refund.body.id);
  }
  const ok = settled?.status === 'succeeded' && current.status === 'succeeded' && current.amount_refunded === amount;
  process.stdout.write(`${ok ? 'OK' : 'UNEXPECTED'}: refund ${refund.body.id} of ${amount} went pending → ${settled?.status}; ` +
    `the payment stays ${current.status} with amount_refunded ${current.amount_refunded}\n`);
  return ok;
}

/**
 * A payment the PSP holds for the customer (3-D Secure style): it stops at requires_action with a
 * `next_action` URL, the PSP's page; the demo plays the customer and presses Approve there, then
 * long-polls the payment until the PSP's webhook has brought the outcome.
 */
async function customerApproves(): Promise<boolean> {
  const label = 'A card that needs the customer';
  const checkoutId = `demo-${randomBytes(6).toString('hex')}`;
  const created = await call(`${label}: create`, checkoutId, 'POST', `${info.publicUrl}/payments`,
    { amount: 4200, currency: 'EUR', payment_method: 'pm_card_requires_action', description: `Ringpay demo: ${label}` });
  if (created.status !== 202) return false;
  let payment = created.body;
  const deadline = Date.now() + 3 * demoLongPollMs;
  while (payment?.status !== 'requires_action' && !terminal.has(payment?.status) && Date.now() < deadline) {
    const next = await call(`${label}: long-poll until the customer is needed`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${payment.version}`);
    if (next.status !== 200) return false;
    payment = next.body;
  }
  const url: unknown = payment?.next_action?.redirect_to_url?.url;
  if (typeof url !== 'string') return false;
  const page = await fetch(url, { signal: AbortSignal.timeout(demoRequestTimeoutMs) });
  const html = await page.text();
  const action = /action="([^"]+\/approve[^"]*)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
  process.stdout.write(`\n=== ${label}: the customer opens next_action.redirect_to_url.url\nGET ${url}\n--> ${page.status} ` +
    `(the PSP's page: ${/Pay <strong id="amount">([^<]+)</.exec(html)?.[1] ?? '?'}, Approve / Decline)\n`);
  if (action === undefined) return false;
  const approved = await fetch(new URL(action, url), { method: 'POST', signal: AbortSignal.timeout(demoRequestTimeoutMs) });
  process.stdout.write(`POST ${new URL(action, url).pathname} (the customer presses Approve)\n--> ${approved.status}\n`);
  await approved.text();
  while (!terminal.has(payment?.status) && Date.now() < deadline) {
    const next = await call(`${label}: long-poll for the outcome (the PSP's webhook brings it)`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${payment.version}`);
    if (next.status !== 200) return false;
    payment = next.body;
  }
  const ok = payment?.status === 'succeeded';
  process.stdout.write(`${ok ? 'OK' : 'UNEXPECTED'}: ${checkoutId} went requires_action → ${payment?.status} once the customer approved\n`);
  return ok;
}

/**
 * Manual capture (issue #14): a payment created with `capture_method: "manual"` is only authorized
 * by the PSP (requires_capture); the merchant captures part of it later (the rest of the
 * authorization is released) and long-polls until it has succeeded with `amount_captured`.
 */
async function manualCapture(amount: number, captured: number): Promise<boolean> {
  const label = 'Authorize now, capture later';
  const checkoutId = `demo-${randomBytes(6).toString('hex')}`;
  const created = await call(`${label}: create with capture_method manual`, checkoutId, 'POST', `${info.publicUrl}/payments`,
    { amount, currency: 'EUR', payment_method: 'pm_card_visa', capture_method: 'manual', description: `Ringpay demo: ${label}` });
  if (created.status !== 202) return false;
  let payment = created.body;
  const deadline = Date.now() + 3 * demoLongPollMs;
  while (payment?.status !== 'requires_capture' && !terminal.has(payment?.status) && Date.now() < deadline) {
    const next = await call(`${label}: long-poll until the PSP has authorized it`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${payment.version}`);
    if (next.status !== 200) return false;
    payment = next.body;
  }
  if (payment?.status !== 'requires_capture') return false;
  const asked = await call(`${label}: capture ${captured} of the ${amount} authorized`, checkoutId, 'POST',
    `${info.publicUrl}/payments/${checkoutId}/capture`, { amount: captured });
  if (asked.status !== 202) return false;
  payment = asked.body;
  while (!terminal.has(payment?.status) && Date.now() < deadline) {
    const next = await call(`${label}: long-poll for the capture's outcome`, checkoutId, 'GET',
      `${info.publicUrl}/payments/${checkoutId}?wait_ms=${demoLongPollMs}&after_version=${payment.version}`);
    if (next.status !== 200) return false;
    payment = next.body;
  }
  const ok = payment?.status === 'succeeded' && payment.amount_captured === captured;
  process.stdout.write(`${ok ? 'OK' : 'UNEXPECTED'}: ${checkoutId} went requires_capture → ${payment?.status} with amount_captured ` +
    `${payment?.amount_captured} of ${amount} authorized (the rest released)\n`);
  return ok;
}

/**
 * The merchant's newest payments from the reporting service (issue #15; no checkout id: nginx sends
 * it there). Postgres follows the nodes by a moment, so it asks again until both demo payments show.
 */
async function listRecent(checkoutIds: readonly string[]): Promise<boolean> {
  const url = `${info.publicUrl}/payments?limit=5`;
  const headers = { Authorization: `Bearer ${apiKey}` };
  const deadline = Date.now() + demoRequestTimeoutMs;
  for (;;) {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(demoRequestTimeoutMs) });
    const text = await res.text();
    const body = res.status === 200 ? JSON.parse(text) : undefined;
    const listed = new Set<string>((body?.data ?? []).map((p: { checkout_id: string }) => p.checkout_id));
    const all = checkoutIds.every((id) => listed.has(id));
    if (all || Date.now() > deadline) {
      show('The merchant\'s newest payments (the reporting service, from Postgres)', 'GET', url, headers, undefined, res.status, text);
      process.stdout.write(`${all ? 'OK' : 'UNEXPECTED'}: both demo payments are in the merchant's list\n`);
      return all;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Received { signature: string; raw: string; body: any }

/**
 * The merchant's webhook receiver: a local HTTP server (the local stack's notifier runs in dev
 * mode, which allows loopback endpoints; a real one must be https on a public address).
 */
async function startReceiver(): Promise<{ url: string; received: Received[]; close: () => void }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      try {
        received.push({ signature: String(req.headers[signatureHeader] ?? ''), raw, body: JSON.parse(raw) });
      } catch {
        // Not JSON: not ours.
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`, received, close: () => server.close() };
}

async function merchantCall(title: string, method: 'GET' | 'POST' | 'DELETE', path: string, reqBody?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { Authorization: `Bearer ${apiKey}`, ...(reqBody === undefined ? {} : { 'Content-Type': 'application/json' }) };
  const res = await fetch(`${info.publicUrl}${path}`, {
    method, headers, body: reqBody === undefined ? undefined : JSON.stringify(reqBody), signal: AbortSignal.timeout(demoRequestTimeoutMs),
  });
  const text = await res.text();
  const body = text === '' ? undefined : JSON.parse(text);
  // The secret is shown once, here; the demo prints only its start.
  const shown = body?.secret === undefined ? text : JSON.stringify({ ...body, secret: `${String(body.secret).slice(0, 12)}… (shown once; keep it)` });
  show(title, method, `${info.publicUrl}${path}`, headers, reqBody, res.status, shown);
  return { status: res.status, body };
}

/** Waits for the receiver to get `type` for `checkoutId`, checks its signature, and shows it. */
async function receivedEvent(receiver: { received: Received[] }, secret: string, checkoutId: string, type: string): Promise<boolean> {
  const deadline = Date.now() + 3 * demoRequestTimeoutMs;
  for (;;) {
    const hit = receiver.received.find((r) => r.body?.checkout_id === checkoutId && r.body?.type === type);
    if (hit !== undefined) {
      const check = verifyWebhookSignature(secret, hit.signature, hit.raw, Math.floor(Date.now() / 1000), 300);
      process.stdout.write([`\n=== The receiver got ${type} (POST from the notifier)`, `  ${signatureHeader}: ${hit.signature}`,
        JSON.stringify(hit.body, null, 2), ''].join('\n'));
      process.stdout.write(`${check.ok ? 'OK' : 'UNEXPECTED'}: event ${hit.body.id} (version ${hit.body.version}) ` +
        `${check.ok ? 'verified with the endpoint\'s secret (HMAC-SHA256 of "t.body")' : `failed verification: ${check.reason}`}\n`);
      return check.ok;
    }
    if (Date.now() > deadline) {
      process.stdout.write(`UNEXPECTED: no ${type} for ${checkoutId} within ${3 * demoRequestTimeoutMs} ms\n`);
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const receiver = await startReceiver();
const endpoint = await merchantCall('Register a webhook endpoint (the notifier; the secret is shown once)', 'POST', '/webhook_endpoints',
  { url: receiver.url, events: ['payment.succeeded', 'payment.failed', 'refund.succeeded'] });
const registered = endpoint.status === 201;
const paid = await follow('A card that succeeds', 'pm_card_visa', 'succeeded');
const declined = await follow('A declined card', 'pm_card_declined', 'failed');
const refunded = paid.ok && await refundPart(paid.checkoutId, paid.payment, 500);
const approvedByCustomer = await customerApproves();
const capturedLater = await manualCapture(5000, 3500);
const listed = await listRecent([paid.checkoutId, declined.checkoutId]);
const notified = registered && await receivedEvent(receiver, String(endpoint.body.secret), paid.checkoutId, 'payment.succeeded');
if (registered) {
  // The demo's receiver goes away with the demo: its endpoint goes too (it would fail, then be disabled).
  await merchantCall('Delete the demo\'s webhook endpoint', 'DELETE', `/webhook_endpoints/${String(endpoint.body.id)}`);
}
receiver.close();
const ok = paid.ok && declined.ok && refunded && approvedByCustomer && capturedLater && listed && notified;
process.stdout.write(ok ? '\nDemo OK: the payments reached the terminal state the PSP decided (one after the customer approved it, one captured in part after its authorization), the refund was made, the merchant lists them, and its endpoint got a signed, verified payment.succeeded.\n' : '\nDemo FAILED.\n');
process.exit(ok ? 0 : 1);
