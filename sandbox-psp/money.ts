// Money rules of the sandbox PSP: currencies it accepts and the fee it takes. Amounts are integer
// minor units everywhere; the fee is computed with integer arithmetic only, so the reconciler can
// recompute it exactly.

import { isSupportedCurrency } from '../payment-svc/currencies.ts'

/** 1.4 % ... */
export const feeBasisPoints = 140
/** ... + 25 minor units (in the charge's currency, whatever its exponent). */
export const feeFixedMinor = 25
const basisPointsPerUnit = 10_000
/** Past this, amount * basis points would leave the safe integers. */
const amountForFeeMax = Math.floor((Number.MAX_SAFE_INTEGER - basisPointsPerUnit) / feeBasisPoints)

/**
 * fee = round_half_up(amount * 140 / 10000) + 25, capped at the amount so net is never negative;
 * net = amount - fee. Only succeeded charges carry a fee; failed and pending ones show 0 / 0.
 * Examples: 1999 -> 28 + 25 = 53 (net 1946); 1250 -> 17.5 rounds to 18, + 25 = 43; 10 -> 10 (net 0).
 */
export function feeFor (amount: number): number {
  if (!Number.isSafeInteger(amount) || amount < 0 || amount > amountForFeeMax) {
    throw new RangeError(`amount must be an integer within 0..${amountForFeeMax}, got ${amount}`)
  }
  // Half-up: add half the divisor, then divide, dropping the remainder (all values are >= 0).
  const scaled = amount * feeBasisPoints + basisPointsPerUnit / 2
  const variable = (scaled - (scaled % basisPointsPerUnit)) / basisPointsPerUnit
  return Math.min(amount, variable + feeFixedMinor)
}

export function netFor (amount: number): number {
  return amount - feeFor(amount)
}

/** ISO 4217 active currency codes, case-insensitive on input; stored upper case. */
export function normaliseCurrency (value: string): string | undefined {
  const upper = value.toUpperCase()
  return isSupportedCurrency(upper) ? upper : undefined
}
