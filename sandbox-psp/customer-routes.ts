// The customer's page routes (customer-action.ts), HTML, no API key:
//   GET  /challenge/<charge id>?token=…            the challenge: amount, merchant, Approve / Decline
//   POST /challenge/<charge id>/approve?token=…    the customer approves: the charge succeeds
//   POST /challenge/<charge id>/decline?token=…    the customer declines: the charge fails
// A wrong token is answered like an unknown charge (404), so links cannot be probed.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { PspContext } from './context.ts'
import { challengePage, customerPagePathPrefix, resultPage, type CustomerDecision } from './customer-action.ts'
import { PspError } from './errors.ts'
import { readBody } from './http-io.ts'

export interface CustomerRouteMatch {
  route: string
  done: Promise<void> | undefined
}

const decisions: ReadonlySet<string> = new Set<CustomerDecision>(['approve', 'decline'])

function sendHtml (res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    // The page holds the link's token: never cached, never framed by another site.
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    'referrer-policy': 'no-referrer',
  })
  res.end(html)
}

export function customerPageRoute (ctx: PspContext, req: IncomingMessage, res: ServerResponse, path: string,
  query: URLSearchParams): CustomerRouteMatch {
  const parts = path.slice(customerPagePathPrefix.length).split('/')
  const chargeId = decodeURIComponent(parts[0] ?? '')
  const token = query.get('token')
  const unknown = (): PspError => new PspError('resource_missing', { message: 'No such payment page' })
  if (parts.length === 1) {
    if (req.method !== 'GET') throw new PspError('method_not_allowed')
    if (!ctx.customerPages.verify(chargeId, token)) throw unknown()
    const charge = ctx.store.getCharge(chargeId)
    if (charge === undefined) throw unknown()
    sendHtml(res, 200, charge.status === 'requires_action' ? challengePage(charge, token!) : resultPage(charge))
    return { route: 'GET /challenge/:id', done: undefined }
  }
  const decision = parts[1] ?? ''
  if (parts.length !== 2 || !decisions.has(decision)) throw unknown()
  if (req.method !== 'POST') throw new PspError('method_not_allowed')
  if (!ctx.customerPages.verify(chargeId, token)) throw unknown()
  return {
    route: 'POST /challenge/:id/:decision',
    done: (async () => {
      // The form's body (empty) is read so the connection stays usable.
      await readBody(req, ctx.limits.bodyBytesMax)
      const result = await ctx.charges.completeCustomerAction(chargeId, decision as CustomerDecision)
      if (result.kind === 'completed') {
        ctx.log.info({ checkout_id: result.charge.reference, charge_id: chargeId, decision, status: result.charge.status }, 'customer acted on the charge')
      }
      sendHtml(res, 200, resultPage(result.charge))
    })(),
  }
}
