// Prints one payment's trace as a waterfall (issue #18): span, service, start offset from the
// first span, duration. Needs a stack started with --tracing (trace files in <stack dir>/traces).
//
//   node scripts/trace.ts --dir <stack dir> <merchant_id> <checkout_id>
//   node scripts/trace.ts --dir <stack dir> --json <merchant_id> <checkout_id>   (the spans as JSON)

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { paymentTraceIds } from '../lib/trace-id.ts'
import { formatWaterfall, readTrace, waterfall } from '../lib/trace-reader.ts'

const { values, positionals } = parseArgs({
  options: { dir: { type: 'string' }, json: { type: 'boolean', default: false } },
  allowPositionals: true,
  strict: true,
})
if (values.dir === undefined || positionals.length !== 2) {
  process.stderr.write('usage: node scripts/trace.ts --dir <stack dir> [--json] <merchant_id> <checkout_id>\n')
  process.exit(2)
}
const [merchantId, checkoutId] = positionals as [string, string]
// The stack dir or its traces dir itself.
const tracesDir = existsSync(join(values.dir, 'traces')) ? join(values.dir, 'traces') : values.dir
const { traceId } = paymentTraceIds(merchantId, checkoutId)
const rows = waterfall(await readTrace(tracesDir, traceId))
if (values.json === true) {
  process.stdout.write(JSON.stringify(rows, null, 2) + '\n')
} else {
  process.stdout.write(`trace ${traceId} (${merchantId}/${checkoutId}), ${rows.length} spans, from ${tracesDir}\n`)
  process.stdout.write(formatWaterfall(rows))
}
if (rows.length === 0) process.exitCode = 1
