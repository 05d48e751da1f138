// The payment state machine, owned by the node. Forward only: a terminal status never changes
// (a refund has its own forward-only status, refunds.ts; a refunded payment stays succeeded), so a
// late or duplicate event cannot move a payment back.
//
//   pending ──► processing ──► succeeded | failed
//      │            │  ▲
//      │            ▼  │
//      ├──────► requires_action ──► succeeded | failed | canceled
//      └──► succeeded | failed | canceled   (a PSP webhook may beat the processor's own write)

import type { PaymentStatus } from '../lib/payment-codec.ts'

const allowedTransitions: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  pending: ['processing', 'requires_action', 'succeeded', 'failed', 'canceled'],
  processing: ['requires_action', 'succeeded', 'failed'],
  requires_action: ['processing', 'succeeded', 'failed', 'canceled'],
  succeeded: [],
  failed: [],
  canceled: [],
}

export function canTransition (from: PaymentStatus, to: PaymentStatus): boolean {
  return allowedTransitions[from].includes(to)
}
