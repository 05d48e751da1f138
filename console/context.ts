// What every console page and action is given: the pool (as ringpay_console), the clients of the
// components it asks, the log. Built once in main.ts; tests build their own.

import type pg from 'pg'
import type { Logger } from '../lib/log.ts'
import type { NodeClient } from '../processor/node-client.ts'
import type { PspClient } from '../processor/psp/psp-client.ts'
import type { DeadLetterStore } from './dead-letters.ts'

export interface ConsoleContext {
  pool: pg.Pool
  /** The nodes' internal API through nginx's internal listener, as the `console` service. */
  node: NodeClient
  /** The PSP as the processors see it (processor/psp/: its wire format stays there). */
  psp: PspClient
  deadLetters: DeadLetterStore
  /** Prometheus' HTTP API base URL (undefined: the health page says so). */
  prometheusUrl: string | undefined
  /** The reconciler's admin trigger (POST /admin/reconcile), and its token. */
  reconciler: { url: string, token: string } | undefined
  trustedProxies: ReadonlySet<string>
  /** Issue #18: the stack's trace files (RINGPAY_TRACES_DIR when RINGPAY_TRACING=1); a timeline shows the payment's trace. */
  tracesDir?: string | undefined
  log: Logger
}
