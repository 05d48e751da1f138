// The PSP's daily settlement report, one line at a time: the header is checked, each data line is
// validated (a line that is not a valid settlement row is an error naming its line, never skipped)
// and turned into one line of Postgres COPY text format for the staging table.
//
//   settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference
//
// amount, fee and net are integer minor units (optional minus sign, at most 18 digits: they fit a
// bigint); net must equal amount - fee; settlement_date must be the report's date. `type` is
// `charge` or `refund` (a type we do not know is an error, never skipped: it may be money). A
// refund line names the refunded charge (`charge`, required) and the refund's own reference
// (`refund_reference`, ours: our refund id; may be empty); its amount is what went back, negative.

import { ReconcileError } from './errors.ts'

export const settlementColumns = ['settlement_date', 'psp_reference', 'checkout_id', 'merchant_id', 'amount',
  'currency', 'fee', 'net', 'status', 'charged_at', 'type', 'charge', 'refund_reference'] as const

/** Staging table columns, in the order of the COPY lines built here. */
export const stagingColumns = ['line', 'psp_reference', 'checkout_id', 'merchant_id', 'amount', 'currency', 'fee',
  'net', 'status', 'charged_at', 'type', 'charge', 'refund_reference'] as const

/** What a report line is about. */
export const lineTypes = ['charge', 'refund'] as const
export type LineType = (typeof lineTypes)[number]

const integerPattern = /^-?\d{1,18}$/
const currencyPattern = /^[A-Z]{3}$/
const statusPattern = /^[A-Za-z_]{1,32}$/
const timestampPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/
const copyEscapePattern = /[\\\t\n\r]/
/** Cells longer than this are refused (ids are ≤ 128 characters at the sandbox). */
export const cellCharsMax = 255

export function checkHeader (cells: readonly string[], line: number): void {
  const expected = settlementColumns.join(',')
  const got = cells.join(',')
  if (line !== 1 || got !== expected) {
    throw new ReconcileError('report_malformed', `expected the header ${expected}, got ${JSON.stringify(got.slice(0, 200))}`, { line })
  }
}

function copyText (value: string): string {
  if (!copyEscapePattern.test(value)) return value
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
}

function integer (value: string, column: string, line: number): string {
  if (!integerPattern.test(value)) {
    throw new ReconcileError('report_malformed', `${column} ${JSON.stringify(value.slice(0, 40))} is not an integer amount in minor units`, { line })
  }
  return value
}

function text (value: string, column: string, line: number, allowEmpty = false): string {
  if ((!allowEmpty && value === '') || value.length > cellCharsMax) {
    throw new ReconcileError('report_malformed', `${column} must be 1..${cellCharsMax} characters`, { line })
  }
  return copyText(value)
}

/** Exact integer difference of two validated integer strings. */
function netMatches (amount: string, fee: string, net: string): boolean {
  if (amount.length <= 15 && fee.length <= 15 && net.length <= 15) return Number(amount) - Number(fee) === Number(net)
  return BigInt(amount) - BigInt(fee) === BigInt(net)
}

/** One data line as a COPY text line (with its newline), or a ReconcileError naming the line. */
export function stagingLine (cells: readonly string[], line: number, reportDate: string): string {
  if (cells.length !== settlementColumns.length) {
    throw new ReconcileError('report_malformed', `expected ${settlementColumns.length} columns, got ${cells.length}`, { line })
  }
  const [date, pspReference, checkoutId, merchantId, amount, currency, fee, net, status, chargedAt, type, charge, refundReference] =
    cells as [string, string, string, string, string, string, string, string, string, string, string, string, string]
  if (date !== reportDate) {
    throw new ReconcileError('report_malformed', `settlement_date ${JSON.stringify(date.slice(0, 40))} is not the report date ${reportDate}`, { line })
  }
  integer(amount, 'amount', line)
  integer(fee, 'fee', line)
  integer(net, 'net', line)
  if (!netMatches(amount, fee, net)) {
    throw new ReconcileError('report_malformed', `net ${net} is not amount ${amount} - fee ${fee}`, { line })
  }
  if (!currencyPattern.test(currency)) throw new ReconcileError('report_malformed', `currency ${JSON.stringify(currency.slice(0, 40))} is not an ISO 4217 code`, { line })
  if (!statusPattern.test(status)) throw new ReconcileError('report_malformed', `status ${JSON.stringify(status.slice(0, 40))} is not a status word`, { line })
  if (!timestampPattern.test(chargedAt) || !Number.isFinite(Date.parse(chargedAt))) {
    throw new ReconcileError('report_malformed', `charged_at ${JSON.stringify(chargedAt.slice(0, 40))} is not an ISO 8601 UTC time`, { line })
  }
  if (!(lineTypes as readonly string[]).includes(type)) {
    throw new ReconcileError('report_malformed', `type ${JSON.stringify(type.slice(0, 40))} is not one of ${lineTypes.join(', ')}`, { line })
  }
  const isRefund = type === 'refund'
  if (!isRefund && (charge !== '' || refundReference !== '')) {
    throw new ReconcileError('report_malformed', 'a charge line has no charge nor refund_reference', { line })
  }
  return `${line}\t${text(pspReference, 'psp_reference', line)}\t${text(checkoutId, 'checkout_id', line)}\t${text(merchantId, 'merchant_id', line, true)}\t${amount}\t${currency}\t${fee}\t${net}\t${status}\t${chargedAt}\t${type}\t${text(charge, 'charge', line, !isRefund)}\t${text(refundReference, 'refund_reference', line, true)}\n`
}
