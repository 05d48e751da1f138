import t from 'tap'
import { loadNodeConfig } from '../config.ts'
import { assertLimits, defaultLimits } from '../limits.ts'

const baseEnv = {
  RINGPAY_NODE_ID: 'n1',
  RINGPAY_PUBLIC_PORT: '7000',
  RINGPAY_ADMIN_PORT: '7001',
  RINGPAY_DATA_DIR: '/tmp/x',
  RINGPAY_API_KEYS_FILE: '/tmp/keys.json',
  RINGPAY_FIELD_KEYS_FILE: '/tmp/field-keys.json',
  RINGPAY_INTERNAL_SERVICES: `processor:${'a'.repeat(64)},ops:${'b'.repeat(64)}`,
}

t.test('the defaults hold together', (t) => {
  t.doesNotThrow(() => assertLimits(defaultLimits))
  t.end()
})

t.test('limits that contradict each other are refused at start-up', (t) => {
  t.throws(() => assertLimits({ ...defaultLimits, ringCapacity: 1000 }), /power of two/)
  t.throws(() => assertLimits({ ...defaultLimits, batchSizeMax: 8192 }), /batchSizeMax/)
  t.throws(() => assertLimits({ ...defaultLimits, bodyBytesMax: 1024 }), /largest valid body/)
  t.throws(() => assertLimits({ ...defaultLimits, leveldbWriteBufferBytes: 4096 }), /leveldbWriteBufferBytes/)
  t.end()
})

t.test('config names the bad variable', (t) => {
  t.equal(loadNodeConfig(baseEnv).limits.ringCapacity, defaultLimits.ringCapacity)
  t.equal(loadNodeConfig({ ...baseEnv, RINGPAY_RING_CAPACITY: '4' }).limits.batchSizeMax, 4)
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_PUBLIC_PORT: 'x' }), { code: 'config_invalid', message: /RINGPAY_PUBLIC_PORT/ })
  t.match(loadNodeConfig({ ...baseEnv, RINGPAY_PUBLIC_PORT: '', RINGPAY_PUBLIC_SOCKET: '/run/ringpay/n1.sock' }), { publicSocket: '/run/ringpay/n1.sock' }, 'a socket instead of a port')
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_PUBLIC_SOCKET: 'relative.sock' }), { code: 'config_invalid', message: /RINGPAY_PUBLIC_SOCKET/ })
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_PUBLIC_SOCKET: `/${'x'.repeat(120)}` }), { code: 'config_invalid', message: /RINGPAY_PUBLIC_SOCKET/ })
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_INTERNAL_SERVICES: 'processor:short' }), /RINGPAY_INTERNAL_SERVICES/)
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_NODE_ID: '' }), /RINGPAY_NODE_ID/)
  t.end()
})

t.test('abuse limits come from the environment, named', (t) => {
  const limits = loadNodeConfig({
    ...baseEnv, RINGPAY_FAILED_KEY_ATTEMPTS_MAX: '5', RINGPAY_FAILED_KEY_WINDOW_MS: '2000', RINGPAY_FAILED_KEY_TRACKED_IPS_MAX: '7',
    RINGPAY_LONG_POLLS_PER_MERCHANT_MAX: '3', RINGPAY_REQUEST_DEADLINE_MS: '4000',
  }).limits
  t.same([limits.failedKeyAttemptsMax, limits.failedKeyWindowMs, limits.failedKeyTrackedIpsMax, limits.longPollsPerMerchantMax, limits.requestDeadlineMs],
    [5, 2000, 7, 3, 4000])
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_LONG_POLLS_PER_MERCHANT_MAX: '0' }), /RINGPAY_LONG_POLLS_PER_MERCHANT_MAX/)
  t.throws(() => assertLimits({ ...defaultLimits, longPollsPerMerchantMax: defaultLimits.longPollWaitersMax + 1 }), /longPollsPerMerchantMax/)
  t.end()
})

t.test('X-Real-IP is believed only from trusted proxies (default: loopback and the Unix socket)', (t) => {
  t.same([...loadNodeConfig(baseEnv).trustedProxies].sort(), ['127.0.0.1', '::1', '::ffff:127.0.0.1', 'unix'])
  t.same([...loadNodeConfig({ ...baseEnv, RINGPAY_TRUSTED_PROXIES: '10.0.0.5, fd00::1' }).trustedProxies].sort(), ['10.0.0.5', '::ffff:10.0.0.5', 'fd00::1'])
  t.same([...loadNodeConfig({ ...baseEnv, RINGPAY_TRUSTED_PROXIES: 'unix' }).trustedProxies], ['unix'])
  t.throws(() => loadNodeConfig({ ...baseEnv, RINGPAY_TRUSTED_PROXIES: 'nginx.local' }), /RINGPAY_TRUSTED_PROXIES/)
  t.end()
})
