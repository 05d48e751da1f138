// The customer's next action on a requires_action payment: the PSP's page where they approve or
// decline the charge (issue #14). The URL comes from the PSP (through the processor or the PSP's
// webhook) and is shown to the merchant in `next_action`, so it is checked before it is kept.

import { containsCardNumber } from '../lib/card-numbers.ts'

export const nextActionUrlLengthMax = 2048

/** An absolute http(s) URL without credentials or anything card-shaped, of bounded length. */
export function isAcceptableNextActionUrl (text: string): boolean {
  if (text.length === 0 || text.length > nextActionUrlLengthMax || containsCardNumber(text)) return false
  try {
    const url = new URL(text)
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === ''
  } catch {
    return false
  }
}
