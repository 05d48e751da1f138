// What tests use to reach the shared stack started by scripts/test.sh (or by hand:
// `node scripts/stack.ts --info-file /tmp/info.json` then RINGPAY_STACK_INFO=/tmp/info.json).
// Tests never start a stack themselves.
import { readFileSync } from 'node:fs';
import type { StackInfo } from '../../scripts/stack/info.ts';

export type { StackInfo, StackNodeInfo } from '../../scripts/stack/info.ts';

/** Control operations (e.g. Kafka start) can take tens of seconds. */
export const controlRequestTimeoutMs = 180_000;

let cached: StackInfo | undefined;

/** The running stack's info, from the file named by RINGPAY_STACK_INFO. */
export function loadStackInfo(): StackInfo {
  if (cached) return cached;
  const path = process.env.RINGPAY_STACK_INFO;
  if (!path) {
    throw new Error('RINGPAY_STACK_INFO is not set: run the tests with scripts/test.sh (it starts the stack), or start one with `node scripts/stack.ts --info-file <path>` and export RINGPAY_STACK_INFO=<path>');
  }
  const info = JSON.parse(readFileSync(path, 'utf8')) as StackInfo;
  for (const field of ['publicUrl', 'internalUrl', 'controlUrl', 'databaseUrl', 'kafkaBrokers', 'nodes', 'apiKeys', 'internalToken', 'dir'] as const) {
    if (info[field] === undefined) throw new Error(`stack info ${path} lacks ${field}`);
  }
  cached = info;
  return info;
}

export class ControlError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(message: string, status: number, body: unknown) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * Calls the stack's control API: `control('/nodes/n1/kill')`, `control('/kafka/start')`,
 * `control('/info', 'GET')`. POST by default; throws ControlError on a non-2xx answer.
 */
export async function control<T = { ok: boolean; service: unknown }>(path: string, method: 'GET' | 'POST' = 'POST'): Promise<T> {
  const { controlUrl } = loadStackInfo();
  const res = await fetch(`${controlUrl}${path}`, { method, signal: AbortSignal.timeout(controlRequestTimeoutMs) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (!res.ok) throw new ControlError(`control ${method} ${path}: ${res.status} ${text.slice(0, 500)}`, res.status, body);
  return body as T;
}
