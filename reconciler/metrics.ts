// prom-client metrics of the reconciler daemon (served on its admin port, /metrics).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { itemClasses } from './classes.ts'
import type { RunResult } from './reconcile.ts'

export function createReconcilerMetrics () {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const metrics = {
    registry,
    runs: new Counter({
      name: 'ringpay_reconciler_runs_total',
      help: 'Reconciliation runs by PSP and outcome (clean, discrepancies, error)',
      labelNames: ['psp', 'outcome'],
      registers: [registry],
    }),
    runDuration: new Histogram({
      name: 'ringpay_reconciler_run_duration_seconds',
      help: 'Duration of one reconciliation run (download, classification, storage)',
      labelNames: ['psp'],
      registers: [registry],
      buckets: [0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300],
    }),
    lastRunItems: new Gauge({
      name: 'ringpay_reconciler_last_run_items',
      help: 'Items of the last successful run, by class',
      labelNames: ['psp', 'class'],
      registers: [registry],
    }),
    lastRunDiscrepancies: new Gauge({
      name: 'ringpay_reconciler_last_run_discrepancies',
      help: 'Discrepancies of the last successful run',
      labelNames: ['psp'],
      registers: [registry],
    }),
    lastRunDuration: new Gauge({
      name: 'ringpay_reconciler_last_run_duration_seconds',
      help: 'Duration of the last successful run',
      labelNames: ['psp'],
      registers: [registry],
    }),
    lastRunPspRows: new Gauge({
      name: 'ringpay_reconciler_last_run_psp_rows',
      help: 'Settlement report rows of the last successful run',
      labelNames: ['psp'],
      registers: [registry],
    }),
    lastRunReportDate: new Gauge({
      name: 'ringpay_reconciler_last_run_report_date_seconds',
      help: 'Report date (UTC midnight, unix seconds) of the last successful run',
      labelNames: ['psp'],
      registers: [registry],
    }),
    lastSuccess: new Gauge({
      name: 'ringpay_reconciler_last_success_timestamp_seconds',
      help: 'When the last successful run finished (unix seconds)',
      labelNames: ['psp'],
      registers: [registry],
    }),
  }
  return {
    ...metrics,
    recordRun (run: RunResult): void {
      const psp = run.psp
      metrics.runs.inc({ psp, outcome: run.discrepancies > 0 ? 'discrepancies' : 'clean' })
      metrics.runDuration.observe({ psp }, run.durationMs / 1000)
      for (const c of itemClasses) metrics.lastRunItems.set({ psp, class: c }, run.counts[c])
      metrics.lastRunDiscrepancies.set({ psp }, run.discrepancies)
      metrics.lastRunDuration.set({ psp }, run.durationMs / 1000)
      metrics.lastRunPspRows.set({ psp }, run.pspRows)
      metrics.lastRunReportDate.set({ psp }, Date.parse(`${run.date}T00:00:00Z`) / 1000)
      metrics.lastSuccess.set({ psp }, Date.now() / 1000)
    },
    recordError (psp: string): void {
      metrics.runs.inc({ psp, outcome: 'error' })
    },
  }
}

export type ReconcilerMetrics = ReturnType<typeof createReconcilerMetrics>
