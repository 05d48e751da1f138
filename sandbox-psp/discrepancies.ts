// Settlement report switches for the reconciler's tests, set per report date with
// PUT /admin/settlements/<date>/discrepancies. A reference ("ref") matches a charge row by its
// psp_reference (charge id) or its checkout_id, a refund row by its psp_reference (refund id) or
// its refund_reference (the caller's refund id). Row numbers count data rows as written, from 1.
//
//   missingRows: [ref]              leave these rows out
//   extraRows: n                    append n fabricated rows for charges that never happened
//   extraRefundRows: n              append n fabricated rows for refunds that never happened
//   amountDelta: {ref: delta}       report amount + delta (fee and net recomputed from it); on a
//                                   refund row the refunded amount: the row shows -(amount + delta)
//   currencyOverride: {ref: "USD"}  report another currency (any three upper-case letters)
//   statusOverride: {ref: "refunded"} report another status
//   duplicateRows: [ref]            write these rows twice, one after the other
//   truncateAfterRows: n            after n full rows, write half of the next one (no newline) and
//                                   end the file; with n rows or fewer nothing is cut
//   malformedRow: n                 row n is written with 6 columns and a non-numeric amount

import { PspError } from './errors.ts'
import type { PspLimits } from './limits.ts'

export interface Discrepancies {
  missingRows?: string[]
  extraRows?: number
  extraRefundRows?: number
  amountDelta?: Record<string, number>
  currencyOverride?: Record<string, string>
  statusOverride?: Record<string, string>
  duplicateRows?: string[]
  truncateAfterRows?: number
  malformedRow?: number
}

const knownSwitches = new Set(['missingRows', 'extraRows', 'extraRefundRows', 'amountDelta', 'currencyOverride', 'statusOverride',
  'duplicateRows', 'truncateAfterRows', 'malformedRow'])
const currencyPattern = /^[A-Z]{3}$/
const statusPattern = /^[a-z_]{1,32}$/
const refLengthMax = 255

function invalid (param: string, message: string): PspError {
  return new PspError('parameter_invalid', { param, message: `${param} ${message}` })
}

function refList (value: unknown, param: string, limits: PspLimits): string[] {
  if (!Array.isArray(value) || value.length > limits.discrepancyRefsMax) throw invalid(param, `must be a list of at most ${limits.discrepancyRefsMax} references`)
  for (const ref of value) {
    if (typeof ref !== 'string' || ref === '' || ref.length > refLengthMax) throw invalid(param, 'must hold non-empty strings')
  }
  return value as string[]
}

function refMap<T> (value: unknown, param: string, limits: PspLimits, check: (v: unknown) => v is T, what: string): Record<string, T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(param, 'must be an object of reference -> value')
  const entries = Object.entries(value)
  if (entries.length > limits.discrepancyRefsMax) throw invalid(param, `must have at most ${limits.discrepancyRefsMax} entries`)
  for (const [ref, v] of entries) {
    if (ref === '' || ref.length > refLengthMax || !check(v)) throw invalid(param, `values must be ${what}`)
  }
  return value as Record<string, T>
}

function count (value: unknown, param: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw invalid(param, `must be an integer within ${min}..${max}`)
  return value
}

export function parseDiscrepancies (input: Record<string, unknown>, limits: PspLimits): Discrepancies {
  const out: Discrepancies = {}
  for (const [name, value] of Object.entries(input)) {
    if (!knownSwitches.has(name)) throw new PspError('parameter_unknown', { param: name, message: `Unknown discrepancy switch ${name}` })
    if (value === null || value === undefined) continue
    switch (name) {
      case 'missingRows': out.missingRows = refList(value, name, limits); break
      case 'duplicateRows': out.duplicateRows = refList(value, name, limits); break
      case 'extraRows': out.extraRows = count(value, name, 0, limits.discrepancyExtraRowsMax); break
      case 'extraRefundRows': out.extraRefundRows = count(value, name, 0, limits.discrepancyExtraRowsMax); break
      case 'truncateAfterRows': out.truncateAfterRows = count(value, name, 0, Number.MAX_SAFE_INTEGER); break
      case 'malformedRow': out.malformedRow = count(value, name, 1, Number.MAX_SAFE_INTEGER); break
      case 'amountDelta':
        out.amountDelta = refMap(value, name, limits, (v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && Math.abs(v) <= limits.amountMinorMax, 'integers (minor units)')
        break
      case 'currencyOverride':
        out.currencyOverride = refMap(value, name, limits, (v): v is string => typeof v === 'string' && currencyPattern.test(v), 'three upper-case letters')
        break
      case 'statusOverride':
        out.statusOverride = refMap(value, name, limits, (v): v is string => typeof v === 'string' && statusPattern.test(v), 'lower-case words')
        break
    }
  }
  return out
}

/** Lookup structures for one report; built once per download, bounded by discrepancyRefsMax. */
export class DiscrepancyPlan {
  readonly extraRows: number
  readonly extraRefundRows: number
  readonly truncateAfterRows: number | undefined
  readonly malformedRow: number | undefined
  readonly #missing: ReadonlySet<string>
  readonly #duplicate: ReadonlySet<string>
  readonly #amountDelta: ReadonlyMap<string, number>
  readonly #currency: ReadonlyMap<string, string>
  readonly #status: ReadonlyMap<string, string>

  constructor (d: Discrepancies) {
    this.extraRows = d.extraRows ?? 0
    this.extraRefundRows = d.extraRefundRows ?? 0
    this.truncateAfterRows = d.truncateAfterRows
    this.malformedRow = d.malformedRow
    this.#missing = new Set(d.missingRows ?? [])
    this.#duplicate = new Set(d.duplicateRows ?? [])
    this.#amountDelta = new Map(Object.entries(d.amountDelta ?? {}))
    this.#currency = new Map(Object.entries(d.currencyOverride ?? {}))
    this.#status = new Map(Object.entries(d.statusOverride ?? {}))
  }

  missing (id: string, reference: string): boolean {
    return this.#missing.has(id) || this.#missing.has(reference)
  }

  duplicated (id: string, reference: string): boolean {
    return this.#duplicate.has(id) || this.#duplicate.has(reference)
  }

  amountDelta (id: string, reference: string): number {
    return this.#amountDelta.get(id) ?? this.#amountDelta.get(reference) ?? 0
  }

  currency (id: string, reference: string): string | undefined {
    return this.#currency.get(id) ?? this.#currency.get(reference)
  }

  status (id: string, reference: string): string | undefined {
    return this.#status.get(id) ?? this.#status.get(reference)
  }
}
