// Nimbus' settlement report (issue #16), in its own format, made from the engine's daily report
// line by line (memory stays flat whatever the day's size):
//
//   Merchant Account;Psp Reference;Merchant Reference;Type;Booking Date;Currency;Gross;Commission;Net;Original Reference;Modification Reference
//   merchant_demo;ch_…;co-123;Settled;2025-03-01T10:11:12Z;EUR;1999;53;1946;;
//   merchant_demo;re_…;co-123;Refunded;2025-03-01T11:00:00Z;EUR;-500;0;-500;ch_…;re_ours
//
// Semicolon-separated, amounts integer minor units (Gross, Commission, Net), Type Settled for a
// charge and Refunded for a refund (a negative Gross), the refunded payment in Original Reference
// and our refund id in Modification Reference. No field of ours holds a ';' (ids and references
// are [A-Za-z0-9_-]); one that did would be refused by the engine long before.

import { once } from 'node:events'
import type { Writable } from 'node:stream'

export const nimbusSettlementHeader = 'Merchant Account;Psp Reference;Merchant Reference;Type;Booking Date;Currency;Gross;Commission;Net;Original Reference;Modification Reference'

/** Splits one RFC 4180 line (the engine quotes cells only when needed). */
export function csvCells (line: string): string[] {
  const cells: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cell += '"'; i++ } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') { cells.push(cell); cell = '' } else cell += c
  }
  cells.push(cell)
  return cells
}

/** One engine line (settlement_date,psp_reference,checkout_id,merchant_id,amount,currency,fee,net,status,charged_at,type,charge,refund_reference) as a Nimbus line. */
export function nimbusLineOf (engineLine: string): string {
  const [, pspReference, checkoutId, merchantAccount, amount, currency, fee, net, , chargedAt, type, charge, refundReference] = csvCells(engineLine)
  return [merchantAccount ?? '', pspReference, checkoutId, type === 'refund' ? 'Refunded' : 'Settled', chargedAt, currency, amount, fee, net,
    charge ?? '', refundReference ?? ''].join(';')
}

export async function writeSettlementReport (engineReport: AsyncIterable<Buffer | string>, out: Writable): Promise<void> {
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) await once(out, 'drain')
  }
  await write(nimbusSettlementHeader + '\n')
  let rest = ''
  let header = true
  for await (const chunk of engineReport) {
    rest += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
    let newline: number
    while ((newline = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, newline)
      rest = rest.slice(newline + 1)
      if (header) { header = false; continue }
      if (line !== '') await write(nimbusLineOf(line) + '\n')
    }
  }
  if (rest !== '' && !header) await write(nimbusLineOf(rest) + '\n')
}
