// Wires one sandbox PSP together and stops it cleanly. Used by main.ts and, in-process, by tests
// and the bench: `const psp = await startSandboxPsp({ dataDir, secretKey, webhookSecret })`.

import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createLogger, type Logger } from '../lib/log.ts'
import { AsyncCompleter } from './async-completer.ts'
import { RefundService } from './refund-service.ts'
import { ChargeService } from './charge-service.ts'
import { resolvePspConfig, type PspConfig, type PspOptions } from './config.ts'
import type { PspContext } from './context.ts'
import { RuntimeControl } from './faults.ts'
import { HeldResponses } from './held-responses.ts'
import { digest } from './http-io.ts'
import { PspMetrics } from './metrics.ts'
import { WebhookDispatcher } from './outbox.ts'
import { createPspServer } from './server.ts'
import { CustomerPages } from './customer-action.ts'
import { PspStore } from './store.ts'

export interface SandboxPsp {
  /** http://host:port, no trailing slash. */
  url: string
  port: number
  config: PspConfig
  context: PspContext
  /** Graceful: stop accepting, finish in-flight requests, flush, close the store. */
  stop: () => Promise<void>
}

/** Starts a PSP. A full PspConfig (from loadPspConfig) is also valid options; it is re-checked. */
export async function startSandboxPsp (options: PspOptions, log: Logger = createLogger('sandbox-psp')): Promise<SandboxPsp> {
  const config = resolvePspConfig(options)
  const limits = config.limits
  const store = new PspStore(config.dataDir, limits)
  await store.open()
  const runtime = new RuntimeControl(config.runtime, limits)
  // The probes are read at scrape time, when every part below exists.
  let ctx: PspContext | undefined
  const metrics = new PspMetrics({
    durable: () => store.counters,
    chargeRequestsInFlight: () => ctx?.charges.inFlight ?? 0,
    webhookDeliveriesInFlight: () => ctx?.dispatcher.inFlight ?? 0,
    heldResponses: () => ctx?.held.size ?? 0,
  })
  store.onBatchWritten = (writes, durationMs) => {
    metrics.storeBatchDuration.observe(durationMs / 1000)
    metrics.storeBatchWrites.observe(writes)
  }
  const dispatcher = new WebhookDispatcher({ store, runtime, limits, metrics, log, secret: config.webhookSecret })
  // Charges a capture, cancel, customer decision or authorization expiry is being written for:
  // one action per charge at a time, across the charge service and the completer.
  const actionsInProgress = new Set<string>()
  const completer = new AsyncCompleter({ store, runtime, limits, log, onWritten: (events) => dispatcher.enqueue(events), actionsInProgress })
  const customerPages = new CustomerPages(config.secretKey)
  const charges = new ChargeService({
    actionsInProgress,
    customerPages,
    store,
    runtime,
    limits,
    metrics,
    onWritten: (_charge, asyncDueMs, events) => {
      dispatcher.enqueue(events)
      if (asyncDueMs !== undefined) completer.schedule(asyncDueMs)
    },
  })
  const refunds = new RefundService({
    store,
    runtime,
    limits,
    metrics,
    onWritten: (asyncDueMs, events) => {
      dispatcher.enqueue(events)
      if (asyncDueMs !== undefined) completer.schedule(asyncDueMs)
    },
  })
  ctx = {
    customerPages,
    config,
    refunds,
    limits,
    store,
    runtime,
    charges,
    dispatcher,
    completer,
    held: new HeldResponses(limits.heldResponsesMax),
    metrics,
    log,
    secretKeyDigest: digest(config.secretKey),
  }
  const context = ctx
  const http = createPspServer(context)
  http.server.listen(config.port, config.host)
  try {
    await once(http.server, 'listening')
  } catch (error) {
    await store.close()
    throw error
  }
  const port = (http.server.address() as AddressInfo).port
  customerPages.setBaseUrl(config.publicBaseUrl ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`)
  // Whatever a previous run left pending or undelivered resumes now.
  completer.start()
  dispatcher.start()
  log.info({ host: config.host, port, data_dir: config.dataDir, webhooks: config.runtime.webhookBaseUrl }, 'sandbox PSP listening')

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    const deadlineMs = Date.now() + limits.shutdownDrainMsMax
    const closed = new Promise<void>((resolve) => http.server.close(() => resolve()))
    http.server.closeIdleConnections()
    // Held responses are "never answered" by design; they do not delay a shutdown.
    context.held.destroyAll()
    const drainTimer = setTimeout(() => {
      log.warn({ in_flight: http.inFlight() }, 'shutdown drain deadline reached; cutting requests short')
      charges.stop()
      refunds.stop()
      http.server.closeAllConnections()
    }, limits.shutdownDrainMsMax)
    await http.drained()
    clearTimeout(drainTimer)
    charges.stop()
    refunds.stop()
    http.server.closeAllConnections()
    await closed
    await completer.stop()
    await dispatcher.stop(deadlineMs)
    await store.close()
    log.info('sandbox PSP stopped')
  }
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    port,
    config,
    context,
    stop: () => (stopping ??= stop()),
  }
}
