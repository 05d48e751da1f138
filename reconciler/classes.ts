// The classes of a reconciliation item, and which of them are discrepancies.

export const itemClasses = [
  'matched',
  'pending_settlement',
  'missing_at_psp',
  'missing_internally',
  'amount_mismatch',
  'currency_mismatch',
  'status_mismatch',
  'duplicate_at_psp',
  'date_mismatch',
  // Refund lines of the report and our succeeded refunds (the classes above serve charges, except
  // matched and pending_settlement, which serve both: an item's line_type tells them apart).
  'refund_missing_at_psp',
  'refund_missing_internally',
  'refund_amount_mismatch',
  'refund_status_mismatch',
  'refund_duplicate_at_psp',
  'refund_date_mismatch',
] as const
export type ItemClass = (typeof itemClasses)[number]

/** Not discrepancies: `matched` (notes included) and `pending_settlement` (not final yet). */
export const discrepancyClasses: ReadonlySet<ItemClass> = new Set(itemClasses.filter((c) => c !== 'matched' && c !== 'pending_settlement'))

export type ClassCounts = Record<ItemClass, number>

export function emptyCounts (): ClassCounts {
  return Object.fromEntries(itemClasses.map((c) => [c, 0])) as ClassCounts
}

export function isItemClass (value: string): value is ItemClass {
  return (itemClasses as readonly string[]).includes(value)
}

export function discrepancyCount (counts: ClassCounts): number {
  let n = 0
  for (const c of discrepancyClasses) n += counts[c]
  return n
}
