// What tests use to reach the shared stack started by scripts/test.sh (or by hand:
// `node scripts/stack.ts --info-file /tmp/info.json` then RINGPAY_STACK_INFO=/tmp/info.json).
// Tests never start a stack themselves.
import { readFileSync } from 'node:fs';
import type { StackInfo } from '../../scripts/stack/info.ts';
import type { KafkaSasl } from '../../lib/kafka-event-bus.ts';
import { callControl } from '../../scripts/stack/control-client.ts';
import { trustCaFile } from '../../scripts/stack/trust-ca.ts';

export { ControlError, controlRequestTimeoutMs } from '../../scripts/stack/control-client.ts';

export type { StackInfo, StackNodeInfo } from '../../scripts/stack/info.ts';

let cached: StackInfo | undefined;

/** The running stack's info, from the file named by RINGPAY_STACK_INFO. */
export function loadStackInfo(): StackInfo {
  if (cached) return cached;
  const path = process.env.RINGPAY_STACK_INFO;
  if (!path) {
    throw new Error('RINGPAY_STACK_INFO is not set: run the tests with scripts/test.sh (it starts the stack), or start one with `node scripts/stack.ts --info-file <path>` and export RINGPAY_STACK_INFO=<path>');
  }
  const info = JSON.parse(readFileSync(path, 'utf8')) as StackInfo;
  for (const field of ['publicUrl', 'publicCaFile', 'internalUrl', 'controlUrl', 'controlToken', 'databaseUrl', 'databaseUrls', 'kafkaBrokers', 'kafkaCredentials', 'eventKeysFile', 'nodes', 'apiKeys', 'internalTokens', 'dir'] as const) {
    if (info[field] === undefined) throw new Error(`stack info ${path} lacks ${field}`);
  }
  // The public listener is https with a certificate of the stack's own CA.
  trustCaFile(info.publicCaFile);
  cached = info;
  return info;
}

/**
 * Where tests reach Kafka, as whom: the `admin` super user unless another principal is named
 * (the services' least-privilege logins: `relay`, `processor`, `dlq`). Spread into
 * lib/kafka-event-bus.ts options or pass to scripts/stack/kafka.ts helpers.
 */
export function kafkaEndpoint(principal: keyof StackInfo['kafkaCredentials'] = 'admin'): { brokers: string[]; sasl: KafkaSasl | undefined } {
  const stack = loadStackInfo();
  return { brokers: stack.kafkaBrokers, sasl: stack.kafkaCredentials?.[principal] };
}

/**
 * Calls the stack's control API with the stack's token: `control('/nodes/n1/kill')`,
 * `control('/kafka/start')`, `control('/info', 'GET')`,
 * `control('/nodes/n1/restart', 'POST', { env: { RINGPAY_RELAY_BACKLOG_EVENTS_MAX: '5' } })`.
 * POST by default; throws ControlError on a non-2xx answer.
 */
export function control<T = { ok: boolean; service: unknown }>(path: string, method: 'GET' | 'POST' = 'POST', body?: unknown): Promise<T> {
  return callControl<T>(loadStackInfo(), path, method, body);
}
