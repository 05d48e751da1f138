// openapi/ringpay-admin.openapi.json (the operators' API, apart from the merchant API's document)
// lists exactly the admin problem registry's codes, and each documented route is one the service
// routes. The running service's answers are checked against it in test/api/admin-keys.test.ts.

import { readFileSync } from 'node:fs'
import t from 'tap'
import { adminProblems } from '../errors.ts'

const spec = JSON.parse(readFileSync(new URL('../../openapi/ringpay-admin.openapi.json', import.meta.url), 'utf8'))

t.test('the admin problem registry and the document list the same codes', (t) => {
  t.same([...spec.components.schemas.ProblemCode.enum].sort(), Object.keys(adminProblems).sort())
  t.equal(Object.keys(adminProblems).length, 17, 'a new code must be documented and this count raised')
  t.end()
})

t.test('the documented routes, and only them', (t) => {
  const routes = Object.entries(spec.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, ops]) => Object.keys(ops).filter((m) => m !== 'parameters').map((m) => `${m.toUpperCase()} ${path}`)).sort()
  t.same(routes, [
    'GET /admin/keys/{key_id}',
    'GET /admin/merchants/{merchant_id}/keys',
    'POST /admin/keys/{key_id}/revoke',
    'POST /admin/keys/{key_id}/roll',
    'POST /admin/merchants',
    'POST /admin/merchants/{merchant_id}/keys',
  ])
  t.end()
})
