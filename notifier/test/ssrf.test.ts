// Where webhooks may go: every non-public address class refused, in each of its spellings
// (IPv4, IPv6, IPv4-mapped, NAT64, 6to4), at the URL and at every resolved address; dev mode
// allows loopback and http only.

import t from 'tap'
import { assertAddressAllowed, assertHostAllowed, classifyAddress, parseEndpointUrl, UrlRefused, type Resolver } from '../ssrf.ts'

const prod = { allowLoopback: false }
const dev = { allowLoopback: true }

t.test('address classes', (t) => {
  const cases: Array<[string, string]> = [
    ['8.8.8.8', 'public'], ['1.1.1.1', 'public'], ['93.184.216.34', 'public'],
    ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'],
    ['172.15.0.1', 'public'], ['172.32.0.1', 'public'],
    ['169.254.169.254', 'link_local'], ['100.64.0.1', 'shared'], ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'],
    ['192.0.2.1', 'documentation'], ['198.51.100.7', 'documentation'], ['203.0.113.9', 'documentation'],
    ['198.18.0.1', 'benchmarking'], ['224.0.0.1', 'multicast'], ['240.0.0.1', 'reserved'], ['255.255.255.255', 'broadcast'],
    ['2606:4700:4700::1111', 'public'], ['2001:4860:4860::8888', 'public'],
    ['::1', 'loopback'], ['::', 'unspecified'], ['fe80::1', 'link_local'], ['fe80::1%eth0', 'link_local'], ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'], ['fec0::1', 'private'], ['ff02::1', 'multicast'], ['2001:db8::1', 'documentation'],
    ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['::ffff:10.0.0.1', 'private'], ['::ffff:169.254.169.254', 'link_local'],
    ['::ffff:8.8.8.8', 'public'], ['::127.0.0.1', 'reserved'], ['::ffff:0:8.8.8.8', 'reserved'],
    ['64:ff9b::127.0.0.1', 'loopback'], ['64:ff9b::a00:1', 'private'], ['64:ff9b::8.8.8.8', 'public'], ['64:ff9b:1::1', 'private'],
    ['2002:7f00:1::', 'loopback'], ['2002:0a00:0001::1', 'private'], ['2002:0808:0808::1', 'ipv6_transition'], ['2001:0::1', 'ipv6_transition'],
    ['[::1]', 'loopback'], ['100::1', 'reserved'], ['4000::1', 'reserved'],
  ]
  for (const [address, kind] of cases) t.equal(classifyAddress(address), kind, `${address} is ${kind}`)
  t.throws(() => classifyAddress('not-an-ip'), UrlRefused)
  t.end()
})

t.test('loopback only in dev mode; other private classes never', (t) => {
  t.throws(() => assertAddressAllowed('127.0.0.1', prod), { code: 'address_not_public' })
  t.throws(() => assertAddressAllowed('::ffff:127.0.0.1', prod), { code: 'address_not_public' })
  t.doesNotThrow(() => assertAddressAllowed('127.0.0.1', dev))
  t.doesNotThrow(() => assertAddressAllowed('::1', dev))
  for (const address of ['10.0.0.1', '169.254.169.254', '::ffff:192.168.0.1', 'fe80::1', '0.0.0.0']) {
    t.throws(() => assertAddressAllowed(address, dev), { code: 'address_not_public' }, `${address} refused in dev mode too`)
  }
  t.doesNotThrow(() => assertAddressAllowed('8.8.8.8', prod))
  t.end()
})

t.test('URL shape: https only (http in dev mode), no credentials, no fragment', (t) => {
  t.equal(parseEndpointUrl('https://example.com/hooks', prod, 2048).hostname, 'example.com')
  t.throws(() => parseEndpointUrl('http://example.com/hooks', prod, 2048), { code: 'scheme_not_allowed' })
  t.doesNotThrow(() => parseEndpointUrl('http://127.0.0.1:9/hooks', dev, 2048))
  t.throws(() => parseEndpointUrl('ftp://example.com/', dev, 2048), { code: 'scheme_not_allowed' })
  t.throws(() => parseEndpointUrl('https://user:pw@example.com/', prod, 2048), { code: 'credentials_in_url' })
  t.throws(() => parseEndpointUrl('https://example.com/#x', prod, 2048), { code: 'url_invalid' })
  t.throws(() => parseEndpointUrl('not a url', prod, 2048), { code: 'url_invalid' })
  t.throws(() => parseEndpointUrl(`https://example.com/${'a'.repeat(3000)}`, prod, 2048), { code: 'url_invalid' })
  t.end()
})

t.test('a host is checked by every address it resolves to (registration of a private URL refused, dev mode off)', async (t) => {
  const resolver = (addresses: string[]): Resolver => async () => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  const check = (url: string, addresses: string[], policy = prod): Promise<void> => assertHostAllowed(parseEndpointUrl(url, policy, 2048), policy, resolver(addresses))
  await t.resolves(check('https://hooks.example.com/', ['93.184.216.34', '2606:2800:220:1::1']))
  await t.rejects(check('https://hooks.example.com/', ['93.184.216.34', '10.1.2.3']), { code: 'address_not_public' }, 'one private address among public ones is enough')
  await t.rejects(check('https://internal.example.com/', ['::ffff:169.254.169.254']), { code: 'address_not_public' })
  await t.rejects(check('https://localhost/', ['127.0.0.1', '::1']), { code: 'address_not_public' })
  await t.resolves(check('http://localhost:9/', ['127.0.0.1', '::1'], dev))
  await t.rejects(check('https://nothing.example/', []), { code: 'host_unresolvable' })
  // Literals are checked without resolving, in every spelling the URL parser accepts.
  for (const url of ['https://127.0.0.1/', 'https://[::1]/', 'https://[::ffff:127.0.0.1]/', 'https://2130706433/', 'https://0x7f.1/', 'https://10.0.0.1/', 'https://[fd00::1]/', 'https://169.254.169.254/latest/meta-data']) {
    await t.rejects(check(url, ['8.8.8.8']), { code: 'address_not_public' }, `${url} refused`)
  }
  const failing: Resolver = async () => { throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }) }
  await t.rejects(assertHostAllowed(new URL('https://nope.invalid/'), prod, failing), { code: 'host_unresolvable' })
})
