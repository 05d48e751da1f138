// The alert rules (ops/prometheus/alerts.yml) and the stack's Prometheus config, checked by
// Prometheus' own tool: the rules parse, their unit tests (alerts.test.yml: each alert fires when
// it should and not before) pass, and the rendered scrape config is valid. The dashboard JSON
// parses and charts only metrics that exist. Firing on the real stack: test/faults/alerts-fire.test.ts.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { alertRulesFile, findPrometheus, renderPrometheusConfig } from '../../scripts/stack/prometheus.ts'
import { findExecutable, repoRoot } from '../../scripts/stack/util.ts'

const promtool = findExecutable('promtool')
if (promtool === undefined || promtool === null) throw new Error('promtool not found: run scripts/ensure-deps.sh')
findPrometheus()

function run (...args: string[]): { status: number | null, output: string } {
  const r = spawnSync(promtool!, args, { cwd: join(repoRoot, 'ops', 'prometheus'), encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

t.test('promtool: the rules parse and their unit tests pass', async (t) => {
  const check = run('check', 'rules', alertRulesFile)
  t.equal(check.status, 0, check.output)
  t.match(check.output, /SUCCESS: \d+ rules found/)
  const unit = run('test', 'rules', 'alerts.test.yml')
  t.equal(unit.status, 0, unit.output)
})

t.test('every alert has a summary, a severity, and a unit test', async (t) => {
  const rules = readFileSync(alertRulesFile, 'utf8')
  const tests = readFileSync(join(repoRoot, 'ops', 'prometheus', 'alerts.test.yml'), 'utf8')
  const names = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!)
  t.ok(names.length >= 8, `${names.length} alerts`)
  for (const name of names) {
    const body = rules.slice(rules.indexOf(`alert: ${name}`)).split('- alert:')[0]!
    t.match(body, /severity: (page|ticket)/, `${name}: severity`)
    t.match(body, /summary: /, `${name}: summary`)
    if (name !== 'RingpayRelayPublishFailing' && name !== 'RingpayProjectionRetrying' && name !== 'RingpayReportingDown') {
      t.ok(tests.includes(`alertname: ${name}`), `${name}: unit-tested`)
    }
  }
})

t.test('the stack\'s rendered Prometheus config is valid', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ringpay-prom-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, renderPrometheusConfig({
    'payment-nodes': [{ instance: 'n1', address: '127.0.0.1:9101' }, { instance: 'n2', address: '127.0.0.1:9102' }],
    processors: [{ instance: 'p1', address: '127.0.0.1:9201' }],
    reconciler: [{ instance: 'reconciler', address: '127.0.0.1:9301' }],
    reporting: [{ instance: 'reporting', address: '127.0.0.1:9401' }],
    notifier: [{ instance: 'notifier', address: '127.0.0.1:9501' }],
  }, alertRulesFile))
  const check = run('check', 'config', config)
  t.equal(check.status, 0, check.output)
})

/** Every metric name our code registers (prom-client `name: 'ringpay_…'`). */
function registeredMetrics (): Set<string> {
  const names = new Set<string>()
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      if (entry === 'node_modules' || entry.startsWith('.')) continue
      const path = join(dir, entry)
      if (statSync(path).isDirectory()) walk(path)
      // prom-client's `name: 'ringpay_…'`, and the relay's gauge('ringpay_…', …) helper.
      else if (path.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/(?:name: |gauge\()'(ringpay_[a-z_]+)'/g)) names.add(m[1]!)
    }
  }
  for (const dir of ['payment-svc', 'processor', 'cdc-relay', 'reconciler', 'reporting', 'notifier', 'lib']) walk(join(repoRoot, dir))
  return names
}

t.test('the alerts and the Grafana dashboard name only metrics that exist', async (t) => {
  const known = registeredMetrics()
  const dashboard = JSON.parse(readFileSync(join(repoRoot, 'ops', 'grafana', 'ringpay.json'), 'utf8'))
  const exprs: string[] = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((target: any) => String(target.expr)))
  t.ok(exprs.length >= 8, `${exprs.length} queries`)
  const rules = readFileSync(alertRulesFile, 'utf8')
  for (const text of [...exprs, rules]) {
    for (const m of text.matchAll(/\b(ringpay_[a-z_]+?)(_bucket|_sum|_count)?\b/g)) {
      t.ok(known.has(m[1]!), `${m[1]} is a metric our code registers`)
    }
  }
})
