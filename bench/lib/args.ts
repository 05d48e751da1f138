// Flag parsing helpers shared by the bench scenarios: every numeric flag has bounds, and a bad
// value stops the run with a message that names the flag (exit code 2, like a usage error).

export class UsageError extends Error {
  override name = 'UsageError'
}

export function intFlag (name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer within ${min}..${max}, got ${JSON.stringify(raw)}`)
  }
  return value
}

export function numberFlag (name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a number within ${min}..${max}, got ${JSON.stringify(raw)}`)
  }
  return value
}

export function choiceFlag<T extends string> (name: string, raw: string | undefined, fallback: T, choices: readonly T[]): T {
  if (raw === undefined) return fallback
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}`)
  }
  return raw as T
}
