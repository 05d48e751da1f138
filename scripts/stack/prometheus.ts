// Prometheus (Debian package `prometheus`) for the stack: scrapes every component's /metrics and
// evaluates ops/prometheus/alerts.yml (issue #18). Its config is rendered at every start from the
// stack's ports; the rules file is copied into its dir so a service user can read it.
import { chmodSync, chownSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from './proc.ts';
import type { ServiceUser } from './service-user.ts';
import { findExecutable, pollUntil, repoRoot } from './util.ts';

export const prometheusReadyTimeoutMs = 30_000;
export const prometheusReadyPollIntervalMs = 200;
export const prometheusProbeTimeoutMs = 2_000;
export const prometheusStopTimeoutMs = 10_000;
/**
 * Scrape and rule evaluation every 5 s: an alert `for: 10s` fires within ~20 s of its cause, at a
 * cost of ~12 scrapes a minute per target (measured: under 1 % of a core for the whole stack).
 */
export const prometheusIntervalS = 5;
/** Kept for two days: the stack is for development and tests, not for history. */
export const prometheusRetention = '2d';
export const alertRulesFile = join(repoRoot, 'ops', 'prometheus', 'alerts.yml');

export interface ScrapeTarget {
  /** The `instance` label: the component's stack name (n1, p1, …). */
  instance: string;
  address: string;
}

export interface PrometheusSpec {
  dir: string;
  port: number;
  logFile: string;
  jobs: Readonly<Record<string, readonly ScrapeTarget[]>>;
  user: ServiceUser | null;
}

export function findPrometheus(): string {
  const bin = findExecutable('prometheus');
  if (!bin) throw new Error('prometheus not found: run scripts/ensure-deps.sh (installs Debian package prometheus)');
  return bin;
}

/** prometheus.yml for the stack (YAML is a superset of JSON: rendered as JSON, nothing to escape). */
export function renderPrometheusConfig(jobs: PrometheusSpec['jobs'], rulesFile: string): string {
  return JSON.stringify({
    global: { scrape_interval: `${prometheusIntervalS}s`, evaluation_interval: `${prometheusIntervalS}s`, scrape_timeout: `${prometheusIntervalS - 1}s` },
    rule_files: [rulesFile],
    scrape_configs: Object.entries(jobs).map(([job, targets]) => ({
      job_name: job,
      static_configs: targets.map((t) => ({ targets: [t.address], labels: { instance: t.instance } })),
    })),
  }, null, 2) + '\n';
}

export function createPrometheus(spec: PrometheusSpec): ManagedProcess {
  const rulesFile = join(spec.dir, 'alerts.yml');
  const configFile = join(spec.dir, 'prometheus.yml');
  copyFileSync(alertRulesFile, rulesFile);
  chmodSync(rulesFile, 0o600);
  writeFileSync(configFile, renderPrometheusConfig(spec.jobs, rulesFile), { mode: 0o600 });
  if (spec.user) {
    chownSync(rulesFile, spec.user.uid, spec.user.gid);
    chownSync(configFile, spec.user.uid, spec.user.gid);
  }
  const url = `http://127.0.0.1:${spec.port}`;
  return new ManagedProcess({
    name: 'prometheus',
    command: findPrometheus(),
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(spec.dir, 'data')}`,
      `--storage.tsdb.retention.time=${prometheusRetention}`,
      `--web.listen-address=127.0.0.1:${spec.port}`,
      '--log.level=warn',
    ],
    logFile: spec.logFile,
    ...(spec.user ? { user: { uid: spec.user.uid, gid: spec.user.gid } } : {}),
    stopSignal: 'SIGTERM',
    stopTimeoutMs: prometheusStopTimeoutMs,
    readyTimeoutMs: prometheusReadyTimeoutMs,
    ready: ({ signal }) => pollUntil('prometheus', async () => {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(prometheusProbeTimeoutMs) });
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`prometheus /-/ready answered ${res.status}`);
      return true;
    }, { timeoutMs: prometheusReadyTimeoutMs, intervalMs: prometheusReadyPollIntervalMs, signal }).then(() => {}),
  });
}
