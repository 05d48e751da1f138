// What the route handlers share: the running parts of one sandbox PSP.

import type { Logger } from '../lib/log.ts'
import type { AsyncCompleter } from './async-completer.ts'
import type { ChargeService } from './charge-service.ts'
import type { CustomerPages } from './customer-action.ts'
import type { PspConfig } from './config.ts'
import type { RuntimeControl } from './faults.ts'
import type { HeldResponses } from './held-responses.ts'
import type { PspLimits } from './limits.ts'
import type { PspMetrics } from './metrics.ts'
import type { WebhookDispatcher } from './outbox.ts'
import type { RefundService } from './refund-service.ts'
import type { PspStore } from './store.ts'

export interface PspContext {
  config: PspConfig
  limits: PspLimits
  store: PspStore
  runtime: RuntimeControl
  charges: ChargeService
  /** The customer's page for charges awaiting action (links and their tokens). */
  customerPages: CustomerPages
  refunds: RefundService
  dispatcher: WebhookDispatcher
  completer: AsyncCompleter
  held: HeldResponses
  metrics: PspMetrics
  log: Logger
  /** sha256 of the secret key, for a constant-time comparison of equal lengths. */
  secretKeyDigest: Buffer
}
