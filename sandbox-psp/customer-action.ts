// The customer's side of a charge awaiting action (issue #14): the page a checkout sends the
// customer to (`next_action.redirect_to_url.url`, Stripe's shape), where they approve or decline
// it, as a bank's 3-D Secure page would. The outcome reaches the merchant like any other: the
// charge becomes succeeded or failed and a `charge.*` webhook goes out.
//
// The page needs no API key (the customer has none): the link carries a token, an HMAC of the
// charge id under the PSP's secret key, so only whoever got the link from the charge can act.

import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Charge } from './charge.ts'
import { currencyExponent } from '../payment-svc/currencies.ts'

export const customerPagePathPrefix = '/challenge/'
const tokenChars = 32

export type CustomerDecision = 'approve' | 'decline'

export class CustomerPages {
  readonly #key: string
  #baseUrl: string | undefined

  constructor (secretKey: string) {
    this.#key = secretKey
  }

  /** Where the PSP is reached (known once it listens); the links point there. */
  setBaseUrl (baseUrl: string): void {
    this.#baseUrl = baseUrl.replace(/\/+$/, '')
  }

  token (chargeId: string): string {
    return createHmac('sha256', this.#key).update(`customer-action:${chargeId}`).digest('base64url').slice(0, tokenChars)
  }

  verify (chargeId: string, token: string | null): boolean {
    if (token === null || token.length !== tokenChars) return false
    return timingSafeEqual(Buffer.from(token), Buffer.from(this.token(chargeId)))
  }

  /** The charge's page; undefined before the PSP listens (no charge is created before it does). */
  urlFor (chargeId: string): string | undefined {
    if (this.#baseUrl === undefined) return undefined
    return `${this.#baseUrl}${customerPagePathPrefix}${encodeURIComponent(chargeId)}?token=${this.token(chargeId)}`
  }
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** Integer minor units as a decimal amount, without floating point. */
export function formatAmount (amount: number, currency: string): string {
  const exponent = currencyExponent(currency) ?? 0
  if (exponent === 0) return `${amount} ${currency}`
  const digits = String(amount).padStart(exponent + 1, '0')
  return `${digits.slice(0, -exponent)}.${digits.slice(-exponent)} ${currency}`
}

function page (title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}</style></head>
<body>${body}</body></html>
`
}

/** The challenge: what is being paid, and two buttons. */
export function challengePage (charge: Charge, token: string): string {
  const action = (decision: CustomerDecision): string =>
    `${customerPagePathPrefix}${encodeURIComponent(charge.id)}/${decision}?token=${encodeURIComponent(token)}`
  return page('Confirm your payment', `
<h1>Confirm your payment</h1>
<p id="summary">Pay <strong id="amount">${escapeHtml(formatAmount(charge.amount, charge.currency))}</strong> to <span id="merchant">${escapeHtml(charge.merchant_id)}</span>${charge.description === undefined ? '' : ` for ${escapeHtml(charge.description)}`}.</p>
<form method="post" action="${escapeHtml(action('approve'))}" style="display:inline"><button id="approve" type="submit">Approve</button></form>
<form method="post" action="${escapeHtml(action('decline'))}" style="display:inline"><button id="decline" type="submit">Decline</button></form>
`)
}

/** After the customer acted (or came back to a charge that is no longer waiting). */
export function resultPage (charge: Charge): string {
  const text = charge.status === 'succeeded'
    ? 'Payment approved. You can return to the shop.'
    : charge.status === 'failed'
      ? 'Payment declined. Nothing was charged.'
      : charge.status === 'canceled'
        ? 'This payment was canceled by the shop. Nothing was charged.'
        : `This payment is ${charge.status}.`
  return page('Payment', `<h1 id="status" data-status="${escapeHtml(charge.status)}">${escapeHtml(text)}</h1>`)
}
