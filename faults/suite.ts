// The fault suite: every fault kind (faults/kinds.ts) in turn, under load, against one running
// stack; a row per fault. Used by the CLI (faults/cli.ts) and by CI (faults/test/suite.test.ts).

import type { StackInfo } from '../scripts/stack/info.ts'
import { callControl } from '../scripts/stack/control-client.ts'
import { faultKinds, type FaultContext } from './kinds.ts'
import type { FaultProfile } from './profiles.ts'
import { runFault, waitHealthy, type FaultRow } from './run-fault.ts'

export const pspAdminTimeoutMs = 10_000
export const metricsTimeoutMs = 5_000

function contextFor (stack: StackInfo, profile: FaultProfile, log: (line: string) => void): FaultContext {
  const psp = async (method: 'GET' | 'PUT', body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${stack.psp.url}/admin/config`, {
      method,
      headers: { authorization: `Bearer ${stack.psp.secretKey}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(pspAdminTimeoutMs),
    })
    const text = await res.text()
    if (res.status !== 200) throw new Error(`PSP ${method} /admin/config: ${res.status} ${text}`)
    return JSON.parse(text) as Record<string, unknown>
  }
  return {
    stack,
    profile,
    log,
    control: (path, body) => callControl(stack, path, 'POST', body),
    pspConfig: async (patch) => { await psp('PUT', patch) },
    nodeMetric: async (nodeId, name) => {
      const node = stack.nodes.find((n) => n.id === nodeId)
      if (node === undefined) throw new Error(`no node ${nodeId}`)
      const text = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`, { signal: AbortSignal.timeout(metricsTimeoutMs) }).then((r) => r.text())
      let sum = 0
      for (const line of text.split('\n')) {
        if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
      }
      return sum
    },
  }
}

export async function runFaultSuite (o: {
  stack: StackInfo
  profile: FaultProfile
  /** Fault names to run (default: all). */
  only?: readonly string[]
  log: (line: string) => void
  /** Called after each fault, e.g. to assert it in a test. */
  onRow?: (row: FaultRow) => void
}): Promise<FaultRow[]> {
  const kinds = o.only === undefined ? faultKinds : faultKinds.filter((k) => o.only!.includes(k.name))
  const unknown = (o.only ?? []).filter((name) => !faultKinds.some((k) => k.name === name))
  if (unknown.length > 0) throw new Error(`unknown fault(s) ${unknown.join(', ')}; known: ${faultKinds.map((k) => k.name).join(', ')}`)
  const ctx = contextFor(o.stack, o.profile, o.log)
  const runId = Date.now().toString(36)
  // Whatever a fault changes on the PSP is put back before the next one.
  const pspBaseline = await (await fetch(`${o.stack.psp.url}/admin/config`, {
    headers: { authorization: `Bearer ${o.stack.psp.secretKey}` }, signal: AbortSignal.timeout(pspAdminTimeoutMs),
  })).json() as Record<string, unknown>
  const rows: FaultRow[] = []
  await waitHealthy(ctx, o.profile.healthyDeadlineMs)
  for (const kind of kinds) {
    try {
      const row = await runFault(kind, ctx, runId)
      rows.push(row)
      o.onRow?.(row)
    } finally {
      await ctx.pspConfig(pspBaseline)
    }
  }
  return rows
}
