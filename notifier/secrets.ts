// Endpoint signing secrets. A secret must be usable to sign every delivery, so a digest would not
// do: it is stored sealed with the field key ring (lib/field-crypto.ts), bound to its merchant and
// endpoint (a sealed secret copied to another row does not open), and shown in clear only once,
// in the answer that created or rolled it. Never logged.

import { randomBytes } from 'node:crypto'
import type { FieldSealer } from '../lib/field-crypto.ts'

/** 32 random bytes: as strong as the HMAC-SHA256 key it is. */
export const secretBytes = 32

export function newEndpointSecret (): string {
  return `whsec_${randomBytes(secretBytes).toString('base64url')}`
}

export function newEndpointId (): string {
  return `we_${randomBytes(12).toString('base64url')}`
}

export function secretContext (merchantId: string, endpointId: string, which: 'current' | 'previous'): string {
  // The previous secret is sealed under its own context, so the two columns cannot be swapped.
  return `webhook_endpoints.${which === 'current' ? 'secret' : 'previous_secret'}/${merchantId}/${endpointId}`
}

export function sealSecret (sealer: FieldSealer, merchantId: string, endpointId: string, which: 'current' | 'previous', secret: string): string {
  return sealer.sealText(secret, secretContext(merchantId, endpointId, which))
}

export function openSecret (sealer: FieldSealer, merchantId: string, endpointId: string, which: 'current' | 'previous', sealed: string): string {
  return sealer.openText(sealed, secretContext(merchantId, endpointId, which))
}

/** The stored event body is sealed too: it holds the payment's token, customer ref and metadata. */
export function eventPayloadContext (merchantId: string, eventId: string): string {
  return `merchant_events.payload/${merchantId}/${eventId}`
}
