// kafkajs 2.2.4 on Node 24 emits a TimeoutNegativeWarning on every connection
// (tulios/kafkajs#1751: `throttledUntil - Date.now()` with throttledUntil = -1). Node clamps the
// delay to 1 ms, which is what older Node did silently, so it is harmless: drop exactly that
// warning (a negative timestamp-sized delay) and keep every other one. Imported for its effect by
// every module that creates a kafkajs client; installed once per process.

const installed = Symbol.for('ringpay.kafkajsWarningFilter')
const proc = process as NodeJS.Process & { [installed]?: true }

if (proc[installed] !== true) {
  proc[installed] = true
  const originalEmitWarning = process.emitWarning.bind(process)
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const name = warning instanceof Error ? warning.name : typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type
    const message = warning instanceof Error ? warning.message : warning
    if (name === 'TimeoutNegativeWarning' && /^-\d{10,} is a negative number/.test(message)) return
    ;(originalEmitWarning as (...args: unknown[]) => void)(warning, ...rest)
  }) as typeof process.emitWarning
}
