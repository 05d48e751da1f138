// The payment state machine, owned by the node. Forward only: a terminal status never changes
// (a refund has its own forward-only status, refunds.ts; a refunded payment stays succeeded), so a
// late or duplicate event cannot move a payment back.
//
//   pending ──► processing ──► succeeded | failed
//      │            │  ▲
//      │            ▼  │
//      ├──────► requires_action ──► succeeded | failed | canceled
//      └──► succeeded | failed | canceled   (a PSP webhook may beat the processor's own write)
//
// Manual capture (issue #14): the PSP only authorizes, and the payment waits for the merchant:
//   pending | processing | requires_action ──► requires_capture ──► succeeded | canceled
// (succeeded: captured, possibly in part; canceled: the merchant's cancel or the authorization's
// expiry, the authorization voided at the PSP). Only a manual payment reaches requires_capture.

import type { PaymentStatus } from '../lib/payment-codec.ts'

const allowedTransitions: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  pending: ['processing', 'requires_action', 'requires_capture', 'succeeded', 'failed', 'canceled'],
  processing: ['requires_action', 'requires_capture', 'succeeded', 'failed'],
  requires_action: ['processing', 'requires_capture', 'succeeded', 'failed', 'canceled'],
  requires_capture: ['succeeded', 'canceled'],
  succeeded: [],
  failed: [],
  canceled: [],
}

export function canTransition (from: PaymentStatus, to: PaymentStatus): boolean {
  return allowedTransitions[from].includes(to)
}
