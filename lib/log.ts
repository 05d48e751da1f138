// Structured JSON logs (pino). Every line about a payment carries `checkout_id`.

import { pino, type Logger } from 'pino'
import { maskCardNumbers } from './card-numbers.ts'

export type { Logger }

export function createLogger (component: string, fields: Record<string, string> = {}): Logger {
  return pino({
    level: process.env.RINGPAY_LOG_LEVEL ?? 'info',
    base: { component, ...fields },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Never log credentials or bodies, even if a caller passes them by mistake.
    redact: { paths: ['authorization', 'headers.authorization', 'body', 'req.body'], censor: '[redacted]' },
    // The finished line, whatever put it there (a message, a URL, an error's stack): any card
    // number in it is masked but its last four digits (lib/card-numbers.ts). Lines with fewer
    // than 13 digits pass after one counting loop.
    hooks: { streamWrite: (line) => maskCardNumbers(line, true) },
  })
}
