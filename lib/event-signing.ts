// Change events signed by the node that committed them (issue #17 part 3, SECURITY.md).
//
// Kafka's ACLs keep unauthenticated clients off the events topic, but a credential can leak, and
// every relay shares one principal. So each node has its own HMAC-SHA256 key: its relay adds
//
//   event-mac: <key id>.<base64url HMAC-SHA256(key, "ringpay-event-v1" 0x00 value)>
//
// to every change event it publishes (the value is the change-log entry's bytes, unchanged), and
// the processors, which hold every node's key, project only an event whose MAC checks out under a
// key *of the node the event names*. The MAC covers the whole value: node id, sequence (so the
// event id `<node>:<sequence>`), checkout id, version and payment. A producer without the node's
// key (a leaked Kafka password, a stolen relay login, another node's key) cannot make an event
// that projects; replaying a genuine one is a duplicate event id, dropped by the projection.
//
// Keys file (RINGPAY_EVENT_KEYS_FILE, processors; 0600, outside every data dir):
//   {"keys": [{"id": "n1-k20261207", "node": "n1", "key": "<base64 of 32 bytes>"}, …]}
// A node gets only its own current key: RINGPAY_EVENT_SIGNING_KEY = `<key id>:<base64 key>`.
// Rotation: add the node's new key to the processors' file (restart them), then give the node
// the new key; the old one stays listed until no event signed with it can still be delivered.

import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'

export const eventMacHeader = 'event-mac'
export const eventKeyBytes = 32
/** HMAC-SHA256 output. */
export const eventMacBytes = 32
/** Node ids are short (`n1`); key ids a node id plus a suffix. */
export const eventKeyIdLengthMax = 64
/** Upper bound of the header on the wire (name + value), for the relay's batch byte budget. */
export const eventMacHeaderBytesMax = eventMacHeader.length + eventKeyIdLengthMax + 1 + Math.ceil(eventMacBytes * 4 / 3)
/** A keys file holds a few keys per node; anything this large is not one. */
export const eventKeysFileBytesMax = 256 * 1024

/** Domain separation: these keys sign change events and nothing else, in this format only. */
const macDomain = Buffer.from('ringpay-event-v1\0', 'latin1')
const keyIdPattern = /^[A-Za-z0-9_.-]{1,64}$/
const nodeIdPattern = /^[A-Za-z0-9_.-]{1,64}$/

export const eventSigningKeyEnv = 'RINGPAY_EVENT_SIGNING_KEY'
export const eventKeysFileEnv = 'RINGPAY_EVENT_KEYS_FILE'

export type EventSigningErrorCode =
  | 'event_keys_missing'
  | 'event_keys_unreadable'
  | 'event_keys_insecure_mode'
  | 'event_keys_invalid'
  | 'event_signing_key_invalid'

/** A keys file or signing key that cannot be used: a configuration fault, found at start. */
export class EventSigningError extends Error {
  readonly code: EventSigningErrorCode
  constructor (code: EventSigningErrorCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'EventSigningError'
    this.code = code
  }
}

/** Every refusal code (EventRefusalCode), e.g. to start each metric series at 0. */
export const eventRefusalCodes = [
  'event_mac_missing', 'event_mac_malformed', 'event_mac_unknown_key', 'event_mac_wrong_node', 'event_mac_invalid',
  'event_identity_mismatch', 'event_node_not_owner',
] as const satisfies readonly EventRefusalCode[]

/** Why an event was refused; stable, used as the dead letter's reason and a metric label. */
export type EventRefusalCode =
  /** No `event-mac` header: not published by a relay holding a key. */
  | 'event_mac_missing'
  /** The header is not `<key id>.<base64url MAC>`. */
  | 'event_mac_malformed'
  /** A key id the processors do not hold. */
  | 'event_mac_unknown_key'
  /** A genuine key, but of another node than the event names. */
  | 'event_mac_wrong_node'
  /** The MAC does not match the bytes. */
  | 'event_mac_invalid'
  /** Signed, but inconsistent in itself: event id is not `<node>:<sequence>`, or the payment names another node or checkout id. */
  | 'event_identity_mismatch'
  /** Signed, but for a payment Postgres records as another node's. */
  | 'event_node_not_owner'

export interface EventKeySpec {
  id: string
  node: string
  /** base64 of `eventKeyBytes` random bytes */
  key: string
}

export interface EventKeysFile {
  keys: EventKeySpec[]
}

function keyObjectOf (base64: string, what: string): KeyObject {
  const raw = Buffer.from(base64, 'base64')
  if (raw.length !== eventKeyBytes || raw.toString('base64') !== base64) {
    throw new EventSigningError('event_keys_invalid', `${what} must be base64 of ${eventKeyBytes} bytes`)
  }
  return createSecretKey(raw)
}

function mac (key: KeyObject, value: Uint8Array): Buffer {
  return createHmac('sha256', key).update(macDomain).update(value).digest()
}

/** Signs a node's change events (its relay holds one). */
export class EventSigner {
  readonly keyId: string
  readonly #key: KeyObject

  constructor (keyId: string, keyBase64: string) {
    if (!keyIdPattern.test(keyId)) throw new EventSigningError('event_signing_key_invalid', `key id ${JSON.stringify(keyId)} is not 1-64 of [A-Za-z0-9_.-]`)
    this.keyId = keyId
    try {
      this.#key = keyObjectOf(keyBase64, `key ${keyId}`)
    } catch (error) {
      throw new EventSigningError('event_signing_key_invalid', (error as Error).message)
    }
  }

  /** The `event-mac` header value for these change-event bytes. */
  sign (value: Uint8Array): string {
    return `${this.keyId}.${mac(this.#key, value).toString('base64url')}`
  }
}

/** `<key id>:<base64 key>` (RINGPAY_EVENT_SIGNING_KEY); undefined when unset. */
export function eventSignerFromEnv (env: NodeJS.ProcessEnv): EventSigner | undefined {
  const raw = env[eventSigningKeyEnv]
  if (raw === undefined || raw === '') return undefined
  const at = raw.indexOf(':')
  if (at <= 0) throw new EventSigningError('event_signing_key_invalid', `${eventSigningKeyEnv} must be <key id>:<base64 key>`)
  return new EventSigner(raw.slice(0, at), raw.slice(at + 1))
}

/** The `RINGPAY_EVENT_SIGNING_KEY` value that gives a node `spec`. */
export function eventSigningKeySetting (spec: EventKeySpec): string {
  return `${spec.id}:${spec.key}`
}

export type EventMacVerdict = { ok: true } | { ok: false, code: EventRefusalCode, detail: string }

/** Checks change events against every node's keys (the processors hold one). */
export class EventVerifier {
  readonly #keys = new Map<string, { node: string, key: KeyObject }>()

  constructor (file: EventKeysFile) {
    if (typeof file !== 'object' || file === null || !Array.isArray(file.keys) || file.keys.length === 0) {
      throw new EventSigningError('event_keys_invalid', 'a keys file is {"keys": [{"id", "node", "key"}, …]} with at least one key')
    }
    for (const spec of file.keys) {
      if (typeof spec?.id !== 'string' || !keyIdPattern.test(spec.id)) throw new EventSigningError('event_keys_invalid', `key id ${JSON.stringify(spec?.id)} is not 1-64 of [A-Za-z0-9_.-]`)
      if (typeof spec.node !== 'string' || !nodeIdPattern.test(spec.node)) throw new EventSigningError('event_keys_invalid', `key ${spec.id}: node ${JSON.stringify(spec.node)} is not a node id`)
      if (typeof spec.key !== 'string') throw new EventSigningError('event_keys_invalid', `key ${spec.id} has no key`)
      if (this.#keys.has(spec.id)) throw new EventSigningError('event_keys_invalid', `key id ${spec.id} is listed twice`)
      this.#keys.set(spec.id, { node: spec.node, key: keyObjectOf(spec.key, `key ${spec.id}`) })
    }
  }

  /** Key ids and their nodes (no key material), for the start-up log. */
  get keyIds (): Array<{ id: string, node: string }> {
    return [...this.#keys].map(([id, { node }]) => ({ id, node }))
  }

  /**
   * Whether `header` is a valid MAC of `value` under a key of `nodeId`. The node id is the one the
   * event names (read from the value by the caller): binding the key to it is what stops one
   * node's key from vouching for another node's events.
   */
  verify (nodeId: string, value: Uint8Array, header: string | undefined): EventMacVerdict {
    if (header === undefined || header === '') return { ok: false, code: 'event_mac_missing', detail: `no ${eventMacHeader} header` }
    const dot = header.lastIndexOf('.')
    const keyId = header.slice(0, Math.max(dot, 0))
    const given = Buffer.from(header.slice(dot + 1), 'base64url')
    if (dot <= 0 || given.length !== eventMacBytes) return { ok: false, code: 'event_mac_malformed', detail: `${eventMacHeader} is not <key id>.<base64url MAC>` }
    const key = this.#keys.get(keyId)
    if (key === undefined) return { ok: false, code: 'event_mac_unknown_key', detail: `key ${keyId.slice(0, eventKeyIdLengthMax)} is not held` }
    if (key.node !== nodeId) return { ok: false, code: 'event_mac_wrong_node', detail: `key ${keyId} is node ${key.node}'s, the event names node ${nodeId.slice(0, 64)}` }
    if (!timingSafeEqual(mac(key.key, value), given)) return { ok: false, code: 'event_mac_invalid', detail: `MAC does not match under key ${keyId}` }
    return { ok: true }
  }

  static fromFile (path: string): EventVerifier {
    let text: string
    try {
      const stat = statSync(path)
      // Every node's key: as secret as the field keys.
      if ((stat.mode & 0o077) !== 0) throw new EventSigningError('event_keys_insecure_mode', `${path} is mode ${(stat.mode & 0o777).toString(8)}; it must not be readable by group or others (chmod 600)`)
      if (stat.size > eventKeysFileBytesMax) throw new EventSigningError('event_keys_invalid', `${path} is over ${eventKeysFileBytesMax} bytes`)
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if (error instanceof EventSigningError) throw error
      throw new EventSigningError('event_keys_unreadable', `${path}: ${(error as Error).message}`, { cause: error })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      throw new EventSigningError('event_keys_invalid', `${path} is not JSON`, { cause: error })
    }
    return new EventVerifier(parsed as EventKeysFile)
  }
}

/** The verifier of RINGPAY_EVENT_KEYS_FILE; a processor does not start without one. */
export function eventVerifierFromEnv (env: NodeJS.ProcessEnv): EventVerifier {
  const path = env[eventKeysFileEnv]
  if (path === undefined || path === '') throw new EventSigningError('event_keys_missing', `${eventKeysFileEnv} is required`)
  return EventVerifier.fromFile(path)
}

/** A fresh key for `node`. */
export function newEventKey (id: string, node: string): EventKeySpec {
  return { id, node, key: randomBytes(eventKeyBytes).toString('base64') }
}

/**
 * Why a change event that passed its MAC still cannot be believed: its id must be
 * `<node>:<sequence>` and its payment must name the same node and checkout id (undefined when it
 * holds together). The MAC binds the bytes to a node; this binds what they say to that node.
 */
export function changeEventIdentityMismatch (event: { eventId: string, nodeId: string, sequence: number, checkoutId: string, payment: { nodeId: string, checkoutId: string } }): string | undefined {
  if (event.eventId !== `${event.nodeId}:${event.sequence}`) return `event id ${event.eventId.slice(0, 80)} is not <node>:<sequence> (${event.nodeId}:${event.sequence})`
  if (event.payment.nodeId !== event.nodeId) return `the payment names node ${event.payment.nodeId.slice(0, 64)}, the event node ${event.nodeId}`
  if (event.payment.checkoutId !== event.checkoutId) return 'the payment names another checkout id than the event'
  return undefined
}
