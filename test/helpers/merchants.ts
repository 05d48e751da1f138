// A merchant of a test's own, made through the admin API: for a test whose assertions cover every
// payment or event of its merchant, since merchant_demo carries thousands of other tests' payments
// made meanwhile by the time CI gets there (a search that pages through all of them, an endpoint
// subscribed to all of their events).

import { randomBytes } from 'node:crypto'
import type { StackInfo } from '../../scripts/stack/info.ts'

export async function freshMerchantKey (stack: StackInfo, prefix: string): Promise<{ merchantId: string, key: string }> {
  const admin = stack.admin
  if (admin === undefined) throw new Error('the stack runs no admin service')
  const merchantId = `m_${prefix}_${randomBytes(5).toString('hex')}`
  const call = async (path: string, body: unknown): Promise<any> => {
    const res = await fetch(`${admin.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${admin.operatorToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    if (res.status !== 201) throw new Error(`POST ${path} answered ${res.status}: ${await res.text()}`)
    return res.json()
  }
  await call('/merchants', { merchant_id: merchantId })
  const issued = await call(`/merchants/${merchantId}/keys`, {})
  return { merchantId, key: issued.secret }
}
