// The internal API's service credentials (#17 part 2): the node's setting, who a token names,
// what each service may do, and the actor a transition is recorded with.

import type { IncomingMessage } from 'node:http'
import t from 'tap'
import {
  formatInternalServices, internalTokenDigest, internalTokenHeader, newInternalToken, parseInternalServices,
} from '../../lib/internal-credentials.ts'
import { loadNodeConfig } from '../config.ts'
import { ProblemError } from '../errors.ts'
import { InternalAuthenticator, recordedActor, requireAllowed } from '../internal-auth.ts'

const tokens = { processor: newInternalToken(), ops: newInternalToken(), audit: newInternalToken() }
const setting = formatInternalServices([
  { service: 'processor', token: tokens.processor },
  { service: 'ops', token: tokens.ops },
  { service: 'audit', token: tokens.audit },
])

function request (token?: string | string[]): IncomingMessage {
  return { headers: token === undefined ? {} : { [internalTokenHeader]: token } } as unknown as IncomingMessage
}

function problemOf (fn: () => unknown): { status: number, code: string } | undefined {
  try {
    fn()
    return undefined
  } catch (error) {
    if (!(error instanceof ProblemError)) throw error
    return { status: error.status, code: error.code }
  }
}

t.test('the setting holds digests only, and refuses what it cannot trust', async (t) => {
  for (const token of Object.values(tokens)) t.notOk(setting.includes(token), 'no token in the setting')
  t.ok(setting.includes(internalTokenDigest(tokens.ops)))
  const parsed = parseInternalServices(setting)
  t.same([...parsed.values()], ['processor', 'ops', 'audit'])
  t.equal(parseInternalServices(`ops:${'A'.repeat(64)}`).get('a'.repeat(64)), 'ops', 'hex in any case')
  for (const [bad, why] of [
    ['', /no service credential/],
    [' , ', /no service credential/],
    [`admin:${'a'.repeat(64)}`, /entry 1: the service must be one of/],
    [`webhook:${'a'.repeat(64)}`, /the service must be one of/],
    [`${'a'.repeat(64)}`, /the service must be one of/],
    ['ops:short', /entry 1: not a hex SHA-256 digest/],
    [`ops:${'a'.repeat(64)},processor:${'a'.repeat(64)}`, /entry 2: a digest listed twice/],
  ] as const) {
    t.throws(() => parseInternalServices(bad), { code: 'internal_services_invalid', message: why }, JSON.stringify(bad))
  }
  t.throws(() => formatInternalServices([{ service: 'ops', token: 'too-short' }]), /32\.\.256/)
})

t.test('a node started with the former shared token only says what replaced it', async (t) => {
  const env = { RINGPAY_NODE_ID: 'n1', RINGPAY_PUBLIC_PORT: '7000', RINGPAY_ADMIN_PORT: '7001', RINGPAY_DATA_DIR: '/tmp/x', RINGPAY_API_KEYS_FILE: '/tmp/k', RINGPAY_FIELD_KEYS_FILE: '/tmp/f' }
  t.throws(() => loadNodeConfig({ ...env, RINGPAY_INTERNAL_TOKEN: newInternalToken() }),
    { code: 'config_invalid', message: /RINGPAY_INTERNAL_SERVICES is required \(RINGPAY_INTERNAL_TOKEN, one token shared by every caller, is no longer read/ })
  t.throws(() => loadNodeConfig({ ...env, RINGPAY_INTERNAL_SERVICES: 'ops:x' }), { code: 'config_invalid', message: /RINGPAY_INTERNAL_SERVICES: entry 1/ })
  t.equal(loadNodeConfig({ ...env, RINGPAY_INTERNAL_SERVICES: setting }).internalServices.size, 3)
})

t.test('a token names its service; anything else is 401 internal_unauthorized', async (t) => {
  const auth = new InternalAuthenticator(parseInternalServices(setting))
  for (const service of ['processor', 'ops', 'audit'] as const) {
    t.equal(auth.serviceOf(request(tokens[service])), service)
    t.equal(auth.serviceOf(request(tokens[service])), service, `${service} again (remembered)`)
  }
  for (const [what, header] of [
    ['no header', undefined],
    ['empty', ''],
    ['unknown', newInternalToken()],
    ['a digest instead of the token', internalTokenDigest(tokens.processor)],
    ['a token with a trailing space', `${tokens.processor} `],
    ['a truncated token', tokens.processor.slice(0, -1)],
    ['twice (node joins repeated headers)', `${tokens.processor}, ${tokens.processor}`],
    ['an array', [tokens.processor, tokens.processor]],
    ['oversized', tokens.processor.repeat(10)],
  ] as const) {
    t.same(problemOf(() => auth.serviceOf(request(header as string | string[] | undefined))), { status: 401, code: 'internal_unauthorized' }, what)
  }
})

t.test('what each service may do: 403 internal_forbidden otherwise', async (t) => {
  const forbidden = { status: 403, code: 'internal_forbidden' }
  for (const service of ['processor', 'ops', 'audit'] as const) t.equal(problemOf(() => requireAllowed(service, { kind: 'read' })), undefined, `${service} reads`)
  // canceled: the expiry of payments nobody completes (processor/expiry.ts).
  for (const to of ['processing', 'succeeded', 'failed', 'requires_action', 'canceled'] as const) {
    t.equal(problemOf(() => requireAllowed('processor', { kind: 'transition', to })), undefined, `processor → ${to}`)
  }
  for (const to of ['processing', 'failed', 'canceled'] as const) {
    t.equal(problemOf(() => requireAllowed('ops', { kind: 'transition', to })), undefined, `ops → ${to}`)
  }
  t.same(problemOf(() => requireAllowed('ops', { kind: 'transition', to: 'succeeded' })), forbidden, 'only the processor records a success')
  t.same(problemOf(() => requireAllowed('ops', { kind: 'transition', to: 'requires_action' })), forbidden)
  for (const to of ['processing', 'succeeded', 'failed', 'canceled', 'requires_action'] as const) {
    t.same(problemOf(() => requireAllowed('audit', { kind: 'transition', to })), forbidden, `audit → ${to}`)
  }
  t.equal(problemOf(() => requireAllowed('ops', { kind: 'reload_keys' })), undefined)
  t.same(problemOf(() => requireAllowed('processor', { kind: 'reload_keys' })), forbidden)
  t.same(problemOf(() => requireAllowed('audit', { kind: 'reload_keys' })), forbidden)
  // Refund outcomes (money given back): only the processor, which holds the PSP's answer.
  t.equal(problemOf(() => requireAllowed('processor', { kind: 'refund_transition' })), undefined, 'processor settles refunds')
  t.same(problemOf(() => requireAllowed('ops', { kind: 'refund_transition' })), forbidden, 'ops never settles a refund')
  t.same(problemOf(() => requireAllowed('audit', { kind: 'refund_transition' })), forbidden, 'audit never settles a refund')
  t.same(problemOf(() => requireAllowed('console', { kind: 'refund_transition' })), forbidden, 'the console never settles a refund')
  t.equal(problemOf(() => requireAllowed('console', { kind: 'refund_canceled_charge' })), undefined, 'the console gives back a canceled payment\'s charge')
  t.same(problemOf(() => requireAllowed('ops', { kind: 'refund_canceled_charge' })), forbidden, 'ops does not')
  t.equal(problemOf(() => requireAllowed('console', { kind: 'transition', to: 'succeeded' })), undefined, 'the console accepts the PSP\'s success')
  t.same(problemOf(() => requireAllowed('console', { kind: 'transition', to: 'requires_action' })), forbidden)
  t.same(problemOf(() => requireAllowed('console', { kind: 'transition', to: 'processing' })), forbidden, 'the console never claims')
  t.same(problemOf(() => requireAllowed('console', { kind: 'reload_keys' })), forbidden)
})

t.test('the recorded actor starts with the authenticated service, whatever the body claims', async (t) => {
  t.equal(recordedActor('processor', ''), 'processor')
  t.equal(recordedActor('processor', 'processor'), 'processor')
  t.equal(recordedActor('processor', 'watchdog'), 'processor:watchdog')
  t.equal(recordedActor('ops', 'processor'), 'ops:processor')
  t.equal(recordedActor('ops', 'webhook:sandbox'), 'ops:webhook:sandbox')
  t.equal(recordedActor('audit', 'api'), 'audit:api')
})
