// A client of the stack runner's control API (scripts/stack/control.ts), for tests, the fault
// suite and the bench. The endpoint is the stack info (or anything with its controlUrl and
// controlToken): `callControl(info, '/nodes/n1/kill')`, `callControl(info, '/info', 'GET')`,
// `callControl(info, '/nodes/n1/restart', 'POST', { env: { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '5' } })`.

/** Control operations (e.g. a Kafka start) can take tens of seconds. */
export const controlRequestTimeoutMs = 180_000;

/** Where the control API is and the token it takes (both in the stack info file). */
export interface ControlEndpoint {
  controlUrl: string;
  controlToken: string;
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

/** POST by default; throws ControlError on a non-2xx answer. */
export async function callControl<T = { ok: boolean; service: unknown }>(
  endpoint: ControlEndpoint, path: string, method: 'GET' | 'POST' = 'POST', body?: unknown,
  opts: { timeoutMs?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${endpoint.controlToken}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${endpoint.controlUrl}${path}`, {
    method,
    headers,
    signal: AbortSignal.timeout(opts.timeoutMs ?? controlRequestTimeoutMs),
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (!res.ok) throw new ControlError(`control ${method} ${path}: ${res.status} ${text.slice(0, 500)}`, res.status, parsed);
  return parsed as T;
}
