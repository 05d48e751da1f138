// The webhook signature scheme: a known answer, every refusal reason, secret rotation, and
// agreement with the payment node's verifier (lib/webhook-signature.ts) in both directions.

import { createHmac } from 'node:crypto'
import t from 'tap'
import * as nodeSide from '../../lib/webhook-signature.ts'
import { signatureHeaderName, signWebhook, verifyWebhookSignature } from '../signature.ts'

const secret = 'whsec_test_0123456789abcdef'
const body = '{"id":"evt_1","type":"charge.succeeded","data":{"object":{"id":"ch_1","amount":1999}}}'
const ts = 1_700_000_000

t.test('the header is t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>', async (t) => {
  const expected = createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')
  t.equal(signWebhook(secret, ts, body), `t=${ts},v1=${expected}`)
  t.equal(signWebhook(secret, ts, Buffer.from(body)), `t=${ts},v1=${expected}`, 'raw bytes sign the same as the string')
  t.equal(signatureHeaderName, 'Ringpay-Signature')
  t.throws(() => signWebhook(secret, -1, body))
  t.throws(() => signWebhook(secret, 1.5, body))
})

t.test('verification accepts a fresh, matching signature and refuses everything else', async (t) => {
  const header = signWebhook(secret, ts, body)
  t.same(verifyWebhookSignature(secret, header, body, ts, 300), { ok: true, timestampS: ts })
  t.same(verifyWebhookSignature(secret, header, Buffer.from(body), ts + 300, 300), { ok: true, timestampS: ts }, 'edge of tolerance')
  t.same(verifyWebhookSignature(secret, header, body, ts - 300, 300), { ok: true, timestampS: ts }, 'receiver clock behind')

  const refused = (h: string | undefined, b: string, now: number): string | undefined => {
    const check = verifyWebhookSignature(secret, h, b, now, 300)
    return check.ok ? undefined : check.reason
  }
  t.equal(refused(header, body.replace('1999', '1998'), ts), 'signature_mismatch', 'tampered body')
  t.equal(refused(header.replace(`t=${ts}`, `t=${ts + 1}`), body, ts), 'signature_mismatch', 'tampered timestamp')
  t.equal(verifyWebhookSignature('whsec_other_secret_0000', header, body, ts, 300).ok, false, 'other secret')
  t.equal(refused(header, body, ts + 301), 'timestamp_outside_tolerance', 'too old')
  t.equal(refused(header, body, ts - 301), 'timestamp_outside_tolerance', 'from the future')
  t.equal(refused(undefined, body, ts), 'missing_header')
  t.equal(refused('', body, ts), 'missing_header')
  t.equal(refused('garbage', body, ts), 'malformed_header')
  t.equal(refused(`v1=${'a'.repeat(64)}`, body, ts), 'malformed_header', 'no timestamp')
  t.equal(refused(`t=${ts}`, body, ts), 'malformed_header', 'no signature')
  t.equal(refused(`t=${ts},v1=xyz`, body, ts), 'malformed_header', 'signature not hex')
  t.equal(refused(`t=abc,${header.split(',')[1]}`, body, ts), 'malformed_header', 'timestamp not digits')
  t.equal(refused(`t=${ts},t=${ts},${header.split(',')[1]}`, body, ts), 'malformed_header', 'two timestamps')
})

t.test('several v1 entries: one match is enough (secret rotation); unknown schemes are ignored', async (t) => {
  const good = signWebhook(secret, ts, body).split(',')[1]!
  const old = signWebhook('whsec_old_secret_000000', ts, body).split(',')[1]!
  t.equal(verifyWebhookSignature(secret, `t=${ts},${old},${good}`, body, ts, 300).ok, true)
  t.equal(verifyWebhookSignature(secret, `t=${ts},v0=deadbeef,${good}`, body, ts, 300).ok, true)
  t.equal(verifyWebhookSignature(secret, `t=${ts},${old}`, body, ts, 300).ok, false)
})

t.test('the payment node verifier and ours agree', async (t) => {
  const ours = signWebhook(secret, ts, body)
  t.same(nodeSide.verifyWebhookSignature(secret, ours, body, ts, 300), { ok: true }, 'node accepts our signature')
  t.equal(verifyWebhookSignature(secret, nodeSide.signWebhook(secret, ts, body), body, ts, 300).ok, true, 'we accept the node signer')
  t.equal(nodeSide.signatureHeader, signatureHeaderName.toLowerCase())
})
