// What the processor's core calls on a PSP (issue #16): one implementation per provider
// (psp-client.ts for the sandbox, nimbus-client.ts for Nimbus), each owning its wire format. The
// core picks one by the payment's recorded provider (registry.ts) and never sees a wire format.

import type { CancelCall, CaptureCall, ChargeCall, RefundCall } from './psp-client.ts'
import type { CaptureRequest, ChargeOutcome, ChargeRequest, RefundOutcome, RefundRequest } from './types.ts'

export interface PspProvider {
  /** Its name in routing config, on the payment (psp_provider) and in psp_attempts. */
  readonly name: string
  /** Whether it can authorize only (manual capture); routing sends manual payments only to those that can. */
  readonly manualCapture: boolean
  /** One charge attempt (idempotency key: the checkout id). Throws PspError. */
  charge: (request: ChargeRequest, signal?: AbortSignal) => Promise<ChargeCall>
  cancelCharge: (pspReference: string) => Promise<CancelCall>
  capture: (request: CaptureRequest) => Promise<CaptureCall>
  refund: (request: RefundRequest) => Promise<RefundCall>
  /** The charge made under the payment's key or reference, if any: the "did it charge?" question. */
  findCharge: (request: ChargeRequest) => Promise<ChargeOutcome | undefined>
  findRefund: (request: RefundRequest) => Promise<RefundOutcome | undefined>
  /** The request as kept in psp_attempts (its wire body). */
  chargeBody: (request: ChargeRequest) => unknown
  refundBody: (request: RefundRequest) => unknown
  close: () => Promise<void>
}
