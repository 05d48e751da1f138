// Assembles one payment node: store, service, metrics, listeners, and an orderly shutdown.

import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { keyRingFromEnv } from '../lib/field-crypto.ts'
import type { Logger } from '../lib/log.ts'
import { tracer } from '../lib/tracing.ts'
import { loadRelayConfig } from '../cdc-relay/config.ts'
import { startRelay, type RelayHost } from '../cdc-relay/relay-host.ts'
import { ApiKeyRegistry } from './api-keys.ts'
import { createApiKeysReloader, type ApiKeysReloadOutcome, type ApiKeysReloadTrigger } from './api-keys-reloader.ts'
import { markUnixSocketConnections } from './client-identity.ts'
import type { NodeConfig } from './config.ts'
import { FailedKeyLimiter } from './failed-key-limiter.ts'
import { InternalAuthenticator } from './internal-auth.ts'
import { createNodeMetrics } from './metrics.ts'
import { PaymentService } from './payment-service.ts'
import { createAdminServer, createPublicServer, type ServerContext } from './server.ts'
import { PaymentStore } from './store.ts'
import { noteCommittedBatch } from './traces.ts'

export interface PaymentNode {
  service: PaymentService
  store: PaymentStore
  apiKeys: ApiKeyRegistry
  /** Re-reads the API keys file; a bad file leaves no key in force (fail closed). Never throws. */
  reloadApiKeys: (trigger: ApiKeysReloadTrigger) => Promise<ApiKeysReloadOutcome>
  /** The public listener: a TCP port, or (RINGPAY_PUBLIC_SOCKET) a Unix socket path. */
  publicPort: number | undefined
  publicSocket: string | undefined
  adminPort: number
  /** Stops accepting, answers what is queued, closes the store. Bounded by shutdownDrainMsMax. */
  shutdown: () => Promise<void>
}

export interface NodeFatalHandler {
  (reason: string, error: unknown): void
}

function listen (server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port, backlog: 1024 }, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/**
 * Listens on a Unix socket at `path`, readable and writable by this user only (nginx's workers run
 * as the same service user). A socket file left by a killed node is removed first; anything else
 * at the path is not ours to remove, and listen fails on it.
 */
async function listenOnSocket (server: Server, path: string): Promise<void> {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  markUnixSocketConnections(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ path, backlog: 1024 }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  chmodSync(path, 0o600)
}

export async function startPaymentNode (config: NodeConfig, log: Logger, onFatal: NodeFatalHandler): Promise<PaymentNode> {
  // No keys, no node: a store it cannot seal to or open is of no use (FieldCryptoError stops start-up).
  const keyRing = keyRingFromEnv({ RINGPAY_FIELD_KEYS_FILE: config.fieldKeysFile }, [config.dataDir])
  log.info({ field_keys_file: config.fieldKeysFile, active_key_id: keyRing.activeKeyId }, 'field key ring loaded')
  const store = new PaymentStore(config.dataDir, {
    sealer: keyRing,
    idFilterBytes: config.limits.idFilterBytes,
    writeBufferBytes: config.limits.leveldbWriteBufferBytes,
  })
  const meta = await store.open(config.nodeId, Date.now())
  log.info({ data_dir: config.dataDir, next_sequence: meta.nextSequence }, 'store open')
  const rebuildStartedAt = performance.now()
  void store.knownIdsRebuilt().then((rebuild) => {
    const fields = { ids: rebuild.ids, ms: Math.round(performance.now() - rebuildStartedAt) }
    if (rebuild.ready) log.info(fields, 'known-id filter rebuilt')
    else if (rebuild.error !== undefined) log.error({ ...fields, err: rebuild.error }, 'known-id filter rebuild failed; idempotency reads all go to LevelDB')
  })

  // A bad keys file does not stop the node: it starts refusing every API key (503
  // api_keys_unavailable) and retries the file, while what it already accepted keeps settling
  // (internal transitions and webhooks need no API key).
  const apiKeys = new ApiKeyRegistry(config.apiKeysFile)
  const apiKeysReloader = createApiKeysReloader(apiKeys, log, { retryIntervalMs: config.limits.apiKeysRetryIntervalMs, pollIntervalMs: config.limits.apiKeysPollIntervalMs })
  await apiKeysReloader.reload('start')

  let metrics: ReturnType<typeof createNodeMetrics> | undefined
  let relay: RelayHost | undefined
  const service = new PaymentService(config.nodeId, store, config.limits, {
    onBatchWritten: (size, durationMs) => {
      metrics?.batchSize.observe(size)
      metrics?.batchWriteDuration.observe(durationMs / 1000)
      if (tracer !== undefined) noteCommittedBatch(size, durationMs)
    },
    // A batch of unpublished claims only added nothing for the relay.
    onChangeEventsCommitted: (committed) => {
      if (committed.events.length > 0) relay?.notifyCommitted(store.meta.nextSequence, committed.firstSequence, committed.events)
    },
    // After a failed fsync the disk state is unknown: stop, let LevelDB recover on restart.
    onWriteFailure: (error) => onFatal('batch write failed', error),
  })
  metrics = createNodeMetrics(config.nodeId, {
    ringDepth: () => service.ringDepth,
    ringCapacity: () => service.ringCapacity,
    longPollWaiters: () => service.longPollWaiters,
    apiKeysUnavailableReason: () => apiKeys.unavailableReason,
    apiKeys: () => apiKeys.size,
  })
  relay = await startRelay(loadRelayConfig(process.env), { nodeId: config.nodeId, dataDir: config.dataDir, nextSequence: () => store.meta.nextSequence,
    registry: metrics.registry, log, onFatal, setAdmissionGate: (gate) => service.setAdmissionGate(gate) })

  let stopping = false
  const ctx: ServerContext = {
    service,
    apiKeys,
    reloadApiKeys: apiKeysReloader.reload,
    limits: config.limits,
    metrics,
    log,
    failedKeys: new FailedKeyLimiter(config.limits),
    trustedProxies: config.trustedProxies,
    internalAuth: new InternalAuthenticator(config.internalServices),
    webhookSecrets: config.webhookSecrets,
    notReadyReason: () => (stopping ? 'shutting down' : relay?.notReadyReason()),
    onBug: (error) => onFatal('assertion failed', error),
  }
  const publicServer = createPublicServer(ctx)
  const adminServer = createAdminServer(ctx)
  let publicPort: number | undefined
  if (config.publicSocket !== undefined) await listenOnSocket(publicServer, config.publicSocket)
  else publicPort = await listen(publicServer, config.host, config.publicPort)
  const adminPort = await listen(adminServer, config.host, config.adminPort)
  log.info({ public_port: publicPort, public_socket: config.publicSocket, admin_port: adminPort }, 'payment node listening')

  // Nothing stays stuck silently, even if it never reaches Postgres (relay or processors down):
  // the node counts its own open payments and their age.
  let scanning = false
  const openScan = setInterval(() => {
    if (scanning || stopping) return
    scanning = true
    store.scanOpen(Date.now(), config.limits.openStaleAfterMs, config.limits.openScanEntriesMax).then((scan) => {
      metrics.openPayments.set(scan.open)
      metrics.openPaymentsStale.set(scan.stale)
      metrics.oldestOpenPaymentSeconds.set(scan.oldestAgeMs / 1000)
      if (scan.stale > 0) log.warn({ open: scan.open, stale: scan.stale, oldest_age_ms: scan.oldestAgeMs }, 'payments not terminal past their age')
    }, (error: unknown) => log.error({ err: error }, 'open-payment scan failed')).finally(() => { scanning = false })
  }, config.limits.openScanIntervalMs)
  openScan.unref()

  const shutdown = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    clearInterval(openScan)
    apiKeysReloader.stop()
    log.info('shutting down: no new payments, draining the write queue')
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, config.limits.shutdownDrainMsMax, 'timeout').unref())
    const outcome = await Promise.race([service.drain().then(() => 'drained' as const), deadline])
    if (outcome === 'timeout') log.error('drain did not finish in time; queued writes were not acknowledged')
    service.releaseWaiters()
    publicServer.close()
    adminServer.close()
    publicServer.closeAllConnections()
    adminServer.closeAllConnections()
    await relay?.stop()
    await store.close()
    log.info('stopped')
  }

  return { service, store, apiKeys, reloadApiKeys: apiKeysReloader.reload, publicPort, publicSocket: config.publicSocket, adminPort, shutdown }
}
