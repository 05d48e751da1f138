// Shared bits for the infra tests: reading nginx's JSON access log to see where a key went.
import { readFileSync } from 'node:fs';
import { pollUntil } from '../../scripts/stack/util.ts';
import { loadStackInfo } from '../helpers/stack.ts';

export const accessLogTimeoutMs = 5_000;
export const accessLogPollIntervalMs = 50;
export const requestTimeoutMs = 10_000;

export interface AccessLogLine {
  request_id: string;
  method: string;
  uri: string;
  status: number;
  checkout_key: string;
  upstream_addr: string;
  upstream_status: string;
  request_time: number;
  upstream_response_time: string;
}

export function accessLogLines(): AccessLogLine[] {
  const text = readFileSync(loadStackInfo().nginx.accessLog, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as AccessLogLine);
}

/** Waits for the access-log lines of `key` (nginx writes the log unbuffered, after the response). */
export async function accessLogFor(key: string, count = 1): Promise<AccessLogLine[]> {
  return pollUntil(
    `access log lines for ${key}`,
    async () => {
      const lines = accessLogLines().filter((l) => l.checkout_key === key);
      return lines.length >= count ? lines : undefined;
    },
    { timeoutMs: accessLogTimeoutMs, intervalMs: accessLogPollIntervalMs },
  );
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(requestTimeoutMs) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Which node address a key routes to on the public port (from the access log). */
export async function publicUpstreamOf(key: string): Promise<string> {
  const { publicUrl } = loadStackInfo();
  await get(`${publicUrl}/payments/${encodeURIComponent(key)}`);
  const [line] = await accessLogFor(key);
  if (!line) throw new Error(`no access log line for ${key}`);
  return line.upstream_addr;
}

/** A node as nginx's access log names its upstream ($upstream_addr): its Unix socket. */
export function nodeAddr(node: { publicSocket: string }): string {
  return `unix:${node.publicSocket}`;
}
