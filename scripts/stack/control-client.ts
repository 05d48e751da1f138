// A client of the stack runner's control API (scripts/stack/control.ts), for tests, the fault
// suite and the bench: `callControl(url, '/nodes/n1/kill')`, `callControl(url, '/info', 'GET')`,
// `callControl(url, '/nodes/n1/restart', 'POST', { env: { RINGPAY_X: '1' } })`.

/** Control operations (e.g. a Kafka start) can take tens of seconds. */
export const controlRequestTimeoutMs = 180_000;

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
  controlUrl: string, path: string, method: 'GET' | 'POST' = 'POST', body?: unknown,
): Promise<T> {
  const res = await fetch(`${controlUrl}${path}`, {
    method,
    signal: AbortSignal.timeout(controlRequestTimeoutMs),
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
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
