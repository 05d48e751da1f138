// lib/event-signing.ts: a node's MAC verifies only under that node's key, over those bytes.
import t from 'tap'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  EventSigner, EventVerifier, eventMacHeaderBytesMax, eventSignerFromEnv, eventSigningKeySetting, eventVerifierFromEnv, newEventKey,
} from '../event-signing.ts'

const n1 = newEventKey('n1-k1', 'n1')
const n1Next = newEventKey('n1-k2', 'n1')
const n2 = newEventKey('n2-k1', 'n2')
const verifier = new EventVerifier({ keys: [n1, n1Next, n2] })
const value = new TextEncoder().encode('change event bytes')

t.test('a MAC verifies under its node\'s key, for those bytes only', (t) => {
  const header = new EventSigner(n1.id, n1.key).sign(value)
  t.ok(header.length <= eventMacHeaderBytesMax, 'within the relay\'s byte budget')
  t.same(verifier.verify('n1', value, header), { ok: true })
  t.same(new EventSigner(n1.id, n1.key).sign(value), header, 'deterministic: a re-sent event carries the same MAC')
  t.match(verifier.verify('n1', new TextEncoder().encode('change event bytez'), header), { ok: false, code: 'event_mac_invalid' })
  t.match(verifier.verify('n2', value, header), { ok: false, code: 'event_mac_wrong_node' }, 'n1\'s key cannot vouch for an event naming n2')
  t.same(verifier.verify('n1', value, new EventSigner(n1Next.id, n1Next.key).sign(value)), { ok: true }, 'either of a node\'s keys (rotation)')
  t.end()
})

t.test('missing, malformed and unknown MACs are refused with their own codes', (t) => {
  t.match(verifier.verify('n1', value, undefined), { code: 'event_mac_missing' })
  t.match(verifier.verify('n1', value, ''), { code: 'event_mac_missing' })
  t.match(verifier.verify('n1', value, 'no-dot'), { code: 'event_mac_malformed' })
  t.match(verifier.verify('n1', value, 'n1-k1.c2hvcnQ'), { code: 'event_mac_malformed' })
  t.match(verifier.verify('n1', value, `.${'A'.repeat(43)}`), { code: 'event_mac_malformed' })
  const stranger = newEventKey('n1-k9', 'n1')
  t.match(verifier.verify('n1', value, new EventSigner(stranger.id, stranger.key).sign(value)), { code: 'event_mac_unknown_key' },
    'a key id the processors do not hold, even one that looks like the node\'s')
  const sameIdOtherKey = newEventKey('n1-k1', 'n1')
  t.match(verifier.verify('n1', value, new EventSigner(sameIdOtherKey.id, sameIdOtherKey.key).sign(value)), { code: 'event_mac_invalid' },
    'a known key id with another key')
  t.end()
})

t.test('keys files and settings are checked at load', (t) => {
  t.throws(() => new EventVerifier({ keys: [] }), { code: 'event_keys_invalid' })
  t.throws(() => new EventVerifier({ keys: [n1, n1] }), { code: 'event_keys_invalid' }, 'a key id twice')
  t.throws(() => new EventVerifier({ keys: [{ ...n1, key: 'c2hvcnQ=' }] }), { code: 'event_keys_invalid' }, 'not 32 bytes')
  t.throws(() => new EventVerifier({ keys: [{ ...n1, node: '' }] }), { code: 'event_keys_invalid' })
  t.throws(() => eventVerifierFromEnv({}), { code: 'event_keys_missing' })
  const dir = mkdtempSync(join(tmpdir(), 'event-keys-'))
  const file = join(dir, 'event-keys.json')
  writeFileSync(file, JSON.stringify({ keys: [n1] }), { mode: 0o600 })
  t.same(eventVerifierFromEnv({ RINGPAY_EVENT_KEYS_FILE: file }).keyIds, [{ id: 'n1-k1', node: 'n1' }])
  chmodSync(file, 0o644)
  t.throws(() => eventVerifierFromEnv({ RINGPAY_EVENT_KEYS_FILE: file }), { code: 'event_keys_insecure_mode' })
  t.throws(() => eventVerifierFromEnv({ RINGPAY_EVENT_KEYS_FILE: join(dir, 'missing.json') }), { code: 'event_keys_unreadable' })

  t.equal(eventSignerFromEnv({}), undefined, 'no key: the relay publishes unsigned')
  t.equal(eventSignerFromEnv({ RINGPAY_EVENT_SIGNING_KEY: eventSigningKeySetting(n1) })!.keyId, 'n1-k1')
  t.throws(() => eventSignerFromEnv({ RINGPAY_EVENT_SIGNING_KEY: n1.key }), { code: 'event_signing_key_invalid' }, 'no key id')
  t.throws(() => eventSignerFromEnv({ RINGPAY_EVENT_SIGNING_KEY: 'n1-k1:short' }), { code: 'event_signing_key_invalid' })
  t.end()
})
