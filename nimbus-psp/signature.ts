// Nimbus notification signatures (Adyen's scheme, issue #16): one HMAC per notification item, not
// per request, so a batch can be checked item by item and an item forwarded on its own keeps its
// signature.
//
//   additionalData.hmacSignature = base64(HMAC-SHA256(hmacKey, canonical(item)))
//   canonical(item) = pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success
//
// Each field as it is in the item (absent: ''), `:` and `\` escaped as `\:` and `\\`, so no two
// items share a canonical text. The node imports the verifier; comparison is constant-time.

import { createHmac, timingSafeEqual } from 'node:crypto'

export interface NotificationItem {
  eventCode: string
  /** 'true' | 'false' (Adyen sends strings). */
  success: string
  pspReference: string
  /** A modification's (refund, cancellation) payment. */
  originalReference?: string
  merchantAccountCode: string
  /** Our checkout id. */
  merchantReference: string
  amount: { value: number, currency: string }
  /** ISO 8601. */
  eventDate: string
  reason?: string
  additionalData?: Record<string, string>
}

const hmacBytes = 32

function escape (field: string): string {
  return field.replaceAll('\\', '\\\\').replaceAll(':', '\\:')
}

export function canonicalItem (item: NotificationItem): string {
  return [item.pspReference, item.originalReference ?? '', item.merchantAccountCode, item.merchantReference,
    String(item.amount.value), item.amount.currency, item.eventCode, item.success].map(escape).join(':')
}

export function signItem (hmacKey: string, item: NotificationItem): string {
  return createHmac('sha256', hmacKey).update(canonicalItem(item)).digest('base64')
}

/** Whether the item carries a valid hmacSignature under `hmacKey`. */
export function verifyItem (hmacKey: string, item: NotificationItem): boolean {
  const given = item.additionalData?.hmacSignature
  if (typeof given !== 'string' || given.length > 64) return false
  const candidate = Buffer.from(given, 'base64')
  if (candidate.length !== hmacBytes) return false
  return timingSafeEqual(candidate, createHmac('sha256', hmacKey).update(canonicalItem(item)).digest())
}
