// Nimbus' notifications (issue #16), verified and mapped to what the node understands. Pure; one
// module per PSP. A POST carries a batch: {live, notificationItems: [{NotificationRequestItem}]},
// each item signed on its own (nimbus-psp/signature.ts: HMAC-SHA256 over a canonical field list,
// base64, in additionalData.hmacSignature). Every item is verified before any is applied; one bad
// signature refuses the whole batch (Nimbus then retries it).

import { verifyItem, type NotificationItem } from '../../nimbus-psp/signature.ts'
import { ProblemError } from '../errors.ts'
import type { ParsedWebhook } from './sandbox.ts'

/** More would be a PSP batching across payments, which the path (one checkout id) does not allow. */
export const nimbusItemsPerBatchMax = 50

const referencePattern = /^[A-Za-z0-9_-]{1,128}$/

/** A merchant account at Nimbus is one of our merchant ids. */
const merchantAccountPattern = /^[A-Za-z0-9_-]{1,64}$/

function itemsOf (body: unknown): NotificationItem[] {
  const list = (body as { notificationItems?: unknown } | null)?.notificationItems
  if (!Array.isArray(list) || list.length === 0 || list.length > nimbusItemsPerBatchMax) {
    throw new ProblemError('validation_failed', { detail: `not a nimbus notification batch (1..${nimbusItemsPerBatchMax} items)` })
  }
  return list.map((entry) => {
    const item = (entry as { NotificationRequestItem?: unknown } | null)?.NotificationRequestItem as Record<string, any> | undefined
    if (typeof item !== 'object' || item === null || typeof item.eventCode !== 'string' || (item.success !== 'true' && item.success !== 'false') ||
      typeof item.pspReference !== 'string' || !referencePattern.test(item.pspReference) || typeof item.merchantReference !== 'string' ||
      typeof item.merchantAccountCode !== 'string' || !merchantAccountPattern.test(item.merchantAccountCode) || !Number.isSafeInteger(item.amount?.value) || typeof item.amount?.currency !== 'string' ||
      (item.originalReference !== undefined && typeof item.originalReference !== 'string')) {
      throw new ProblemError('validation_failed', { detail: 'not a nimbus notification item' })
    }
    return item as NotificationItem
  })
}

/**
 * The batch's items, each verified under `hmacKey` and mapped; throws webhook_signature_invalid
 * when any item's signature does not match (nothing of the batch is applied).
 */
export function parseNimbusNotifications (hmacKey: string, body: unknown): Array<ParsedWebhook & { payloadJson: string }> {
  const items = itemsOf(body)
  for (const item of items) {
    if (!verifyItem(hmacKey, item)) throw new ProblemError('webhook_signature_invalid', { detail: 'item_signature_mismatch' })
  }
  // Each item is kept as received (its signature covers it): the receipt's payload.
  return items.map((item) => ({ ...parsedOf(item), payloadJson: JSON.stringify(item) }))
}

function parsedOf (item: NotificationItem): ParsedWebhook {
  const success = item.success === 'true'
  const [failureCode, ...message] = (item.reason ?? '').split(': ')
  // Nimbus items carry no event id: the event is its code, its object and its result (a repeat of
  // one is the same event, deduplicated by the node).
  const pspEventId = `${item.eventCode}-${item.pspReference}-${item.success}`.slice(0, 128)
  const common = {
    // The merchant account is the merchant's own (processor/psp/nimbus.ts), under the HMAC.
    merchantId: item.merchantAccountCode,
    pspEventId,
    type: `nimbus.${item.eventCode.toLowerCase()}.${success ? 'success' : 'failure'}`,
    reference: item.merchantReference,
    amount: item.amount.value,
    currency: item.amount.currency,
    failureCode: success ? '' : (failureCode || 'psp_declined').slice(0, 64),
    failureMessage: success ? '' : message.join(': ').slice(0, 500),
  }
  switch (item.eventCode) {
    case 'AUTHORISATION':
      return { ...common, target: success ? 'succeeded' : 'failed', pspReference: item.pspReference }
    case 'CANCELLATION':
      return { ...common, target: success ? 'canceled' : undefined, pspReference: item.originalReference ?? item.pspReference }
    case 'REFUND': {
      const refundId = item.additionalData?.modificationReference
      if (typeof refundId !== 'string' || !referencePattern.test(refundId)) throw new ProblemError('validation_failed', { detail: 'a nimbus REFUND item without its modificationReference' })
      return { ...common, target: undefined, pspReference: item.pspReference, refund: { id: refundId, target: success ? 'succeeded' : 'failed' } }
    }
    // Anything else is informational: recorded, never a status.
    default:
      return { ...common, target: undefined, pspReference: item.pspReference }
  }
}
