// Where the notifier may send a merchant's webhooks (no SSRF through a merchant's URL): only to
// public internet addresses, over https. Private (RFC 1918, unique local), loopback, link-local,
// shared (CGNAT), documentation, benchmarking, multicast, reserved and unspecified ranges are
// refused, also when written as IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6. A host name is
// resolved and EVERY address it has is checked, at registration and again at each delivery's
// connect (sender.ts passes `checkedLookup` to the socket, so the address checked is the address
// connected to: a DNS answer that changes in between, "DNS rebinding", is caught too).
// The local stack's dev mode allows loopback (and plain http) so demos and tests can run a
// receiver on 127.0.0.1; nothing else.

import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { isIP } from 'node:net'

export type AddressClass =
  | 'public' | 'loopback' | 'private' | 'link_local' | 'shared' | 'unspecified' | 'multicast'
  | 'documentation' | 'benchmarking' | 'reserved' | 'broadcast' | 'ipv6_transition'

export type UrlRefusalCode =
  | 'url_invalid' | 'scheme_not_allowed' | 'credentials_in_url' | 'address_not_public' | 'host_unresolvable'

/** A URL or address the notifier will not send to; `code` is stable, the message names the reason. */
export class UrlRefused extends Error {
  readonly code: UrlRefusalCode
  constructor (code: UrlRefusalCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'UrlRefused'
    this.code = code
  }
}

export interface UrlPolicy {
  /** The local stack's dev mode: loopback targets and http allowed. Never in production. */
  allowLoopback: boolean
}

function ipv4Class (a: number, b: number, c: number, d: number): AddressClass {
  if (a === 0) return 'unspecified'
  if (a === 10) return 'private'
  if (a === 100 && b >= 64 && b <= 127) return 'shared'
  if (a === 127) return 'loopback'
  if (a === 169 && b === 254) return 'link_local'
  if (a === 172 && b >= 16 && b <= 31) return 'private'
  if (a === 192 && b === 0 && c === 0) return 'reserved'
  if (a === 192 && b === 0 && c === 2) return 'documentation'
  if (a === 192 && b === 88 && c === 99) return 'ipv6_transition'
  if (a === 192 && b === 168) return 'private'
  if (a === 198 && (b === 18 || b === 19)) return 'benchmarking'
  if (a === 198 && b === 51 && c === 100) return 'documentation'
  if (a === 203 && b === 0 && c === 113) return 'documentation'
  if (a >= 224 && a <= 239) return 'multicast'
  if (a === 255 && b === 255 && c === 255 && d === 255) return 'broadcast'
  if (a >= 240) return 'reserved'
  return 'public'
}

function parseIpv4 (text: string): number[] | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : Number.NaN))
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : undefined
}

/** 16 bytes of an IPv6 literal (with an optional dotted IPv4 tail), or undefined. */
export function parseIpv6 (text: string): number[] | undefined {
  if (isIP(text) !== 6) return undefined
  let head = text
  const tail: number[] = []
  const lastColon = head.lastIndexOf(':')
  if (head.slice(lastColon + 1).includes('.')) {
    const v4 = parseIpv4(head.slice(lastColon + 1))
    if (v4 === undefined) return undefined
    tail.push(...v4)
    head = head.slice(0, lastColon + 1) + '0:0'
  }
  const halves = head.split('::')
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)))
  const left = groups(halves[0]!)
  const right = halves.length === 2 ? groups(halves[1]!) : []
  const words = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff])
  if (tail.length === 4) bytes.splice(12, 4, ...tail)
  return bytes.length === 16 ? bytes : undefined
}

function ipv6Class (b: number[]): AddressClass {
  const zeroUpTo = (n: number): boolean => b.slice(0, n).every((x) => x === 0)
  if (zeroUpTo(15) && b[15] === 0) return 'unspecified'
  if (zeroUpTo(15) && b[15] === 1) return 'loopback'
  // ::ffff:a.b.c.d (IPv4-mapped): the IPv4 address is what a socket reaches.
  if (zeroUpTo(10) && b[10] === 0xff && b[11] === 0xff) return ipv4Class(b[12]!, b[13]!, b[14]!, b[15]!)
  // ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:0:a.b.c.d (IPv4-translated): never public.
  if (zeroUpTo(12)) return 'reserved'
  if (zeroUpTo(8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return 'reserved'
  // 64:ff9b::/96 (NAT64) reaches the embedded IPv4 address; 64:ff9b:1::/48 is local-use.
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    if (b.slice(4, 12).every((x) => x === 0)) return ipv4Class(b[12]!, b[13]!, b[14]!, b[15]!)
    return 'private'
  }
  // 2002::/16 (6to4) embeds an IPv4 address; 2001::/32 (Teredo) tunnels to anything: refused.
  if (b[0] === 0x20 && b[1] === 0x02) {
    const inner = ipv4Class(b[2]!, b[3]!, b[4]!, b[5]!)
    return inner === 'public' ? 'ipv6_transition' : inner
  }
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) return 'ipv6_transition'
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x0d && b[3] === 0xb8) return 'documentation'
  if (b[0] === 0x01 && b[1] === 0x00 && b.slice(2, 8).every((x) => x === 0)) return 'reserved' // 100::/64 discard
  if ((b[0]! & 0xfe) === 0xfc) return 'private' // fc00::/7 unique local
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link_local' // fe80::/10
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'private' // fec0::/10 site-local (deprecated)
  if (b[0] === 0xff) return 'multicast'
  // Global unicast is 2000::/3; anything else is unassigned.
  if ((b[0]! & 0xe0) !== 0x20) return 'reserved'
  return 'public'
}

/** The class of an IP address literal (v4, or v6 with an optional zone, which is never public). */
export function classifyAddress (address: string): AddressClass {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  if (bare.includes('%')) return 'link_local'
  const v4 = isIP(bare) === 4 ? parseIpv4(bare) : undefined
  if (v4 !== undefined) return ipv4Class(v4[0]!, v4[1]!, v4[2]!, v4[3]!)
  const v6 = parseIpv6(bare)
  if (v6 === undefined) throw new UrlRefused('url_invalid', `${JSON.stringify(address)} is not an IP address`)
  return ipv6Class(v6)
}

/** Throws UrlRefused unless the policy lets the notifier connect to `address`. */
export function assertAddressAllowed (address: string, policy: UrlPolicy): void {
  const kind = classifyAddress(address)
  if (kind === 'public') return
  if (kind === 'loopback' && policy.allowLoopback) return
  throw new UrlRefused('address_not_public', `${address} is a ${kind.replace('_', '-')} address`)
}

/** The URL parsed, if its shape is allowed (scheme, no credentials); the host is checked apart. */
export function parseEndpointUrl (text: string, policy: UrlPolicy, charsMax: number): URL {
  if (text.length === 0 || text.length > charsMax) throw new UrlRefused('url_invalid', `the URL must be 1..${charsMax} characters`)
  let url: URL
  try {
    url = new URL(text)
  } catch (error) {
    throw new UrlRefused('url_invalid', 'not an absolute URL', { cause: error })
  }
  if (url.protocol !== 'https:' && !(policy.allowLoopback && url.protocol === 'http:')) {
    throw new UrlRefused('scheme_not_allowed', policy.allowLoopback ? 'only http(s) URLs' : 'only https URLs')
  }
  if (url.username !== '' || url.password !== '') throw new UrlRefused('credentials_in_url', 'the URL must not hold a user or password')
  if (url.hostname === '') throw new UrlRefused('url_invalid', 'the URL has no host')
  if (url.hash !== '') throw new UrlRefused('url_invalid', 'the URL must not have a fragment')
  return url
}

export type Resolver = (hostname: string) => Promise<readonly LookupAddress[]>

export const systemResolver: Resolver = (hostname) => new Promise((resolve, reject) => {
  dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses)))
})

/** The host of `url` checked: an IP literal directly, a name by every address it resolves to. */
export async function assertHostAllowed (url: URL, policy: UrlPolicy, resolve: Resolver = systemResolver): Promise<void> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  if (isIP(host) !== 0) return assertAddressAllowed(host, policy)
  let addresses: readonly LookupAddress[]
  try {
    addresses = await resolve(host)
  } catch (error) {
    throw new UrlRefused('host_unresolvable', `${host} does not resolve`, { cause: error })
  }
  if (addresses.length === 0) throw new UrlRefused('host_unresolvable', `${host} has no address`)
  for (const { address } of addresses) assertAddressAllowed(address, policy)
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/**
 * A `lookup` for net/tls.connect (undici passes it through): resolves like the system, refuses
 * the connection unless every address is allowed, and connects only to checked addresses.
 */
export function checkedLookup (policy: UrlPolicy) {
  return (hostname: string, options: { all?: boolean, family?: number | string }, callback: LookupCallback): void => {
    const family = options.family === 6 || options.family === 'IPv6' ? 6 : options.family === 4 || options.family === 'IPv4' ? 4 : 0
    dnsLookup(hostname, { all: true, verbatim: true, family }, (error, addresses) => {
      if (error !== null) return callback(error, '')
      try {
        if (addresses.length === 0) throw new UrlRefused('host_unresolvable', `${hostname} has no address`)
        for (const { address } of addresses) assertAddressAllowed(address, policy)
      } catch (refused) {
        return callback(refused as NodeJS.ErrnoException, '')
      }
      if (options.all === true) callback(null, addresses)
      else callback(null, addresses[0]!.address, addresses[0]!.family)
    })
  }
}
