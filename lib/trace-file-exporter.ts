// A span exporter that writes OTLP/JSON (the OTLP trace export request, as the OTLP/HTTP JSON
// encoding defines it: hex ids, nanosecond strings) to a file, one line per export batch. Any
// OTLP tool reads the lines; scripts/trace.ts prints one payment's trace from them.
//
// The file is `<dir>/<service>-<pid>.jsonl` (0600). Before a line would take it past
// `fileBytesMax` it is rotated to `<service>-<pid>.1.jsonl` (replacing the previous one), so a
// process keeps at most two files' worth. Writes are appends, one at a time, in export order.

import { closeSync, fstatSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace'

export const traceFileMode = 0o600
export const traceFileSuffix = '.jsonl'
export const rotatedTraceFileSuffix = '.1.jsonl'

export interface TraceFileExporterOptions {
  dir: string
  /** `<service>-<pid>`: the file's name without its suffix. */
  baseName: string
  fileBytesMax: number
}

export class TraceFileExporter implements SpanExporter {
  readonly #options: TraceFileExporterOptions
  readonly path: string
  readonly rotatedPath: string
  #fd: number | undefined
  #bytes = 0
  #stopped = false
  /** Files rotated so far (for tests and the log). */
  rotations = 0

  constructor (options: TraceFileExporterOptions) {
    if (!(options.fileBytesMax > 0)) throw new Error('fileBytesMax must be positive')
    this.#options = options
    this.path = join(options.dir, options.baseName + traceFileSuffix)
    this.rotatedPath = join(options.dir, options.baseName + rotatedTraceFileSuffix)
  }

  export (spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('trace file exporter is shut down') })
      return
    }
    try {
      const body = JsonTraceSerializer.serializeRequest(spans)
      if (body === undefined) throw new Error('OTLP JSON serializer returned nothing')
      this.#writeLine(Buffer.concat([body, Buffer.from('\n')]))
      resultCallback({ code: ExportResultCode.SUCCESS })
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error as Error })
    }
  }

  // Synchronous: a line is at most exportBatchSpansMax bounded spans (~200 KiB), written once a
  // second at most by default; an async write would need its own queue for the same ordering.
  #writeLine (line: Buffer): void {
    if (this.#fd !== undefined && this.#bytes > 0 && this.#bytes + line.byteLength > this.#options.fileBytesMax) {
      closeSync(this.#fd)
      this.#fd = undefined
      renameSync(this.path, this.rotatedPath)
      this.rotations++
    }
    if (this.#fd === undefined) {
      this.#fd = openSync(this.path, 'a', traceFileMode)
      this.#bytes = fstatSync(this.#fd).size
    }
    let written = 0
    while (written < line.byteLength) written += writeSync(this.#fd, line, written)
    this.#bytes += line.byteLength
  }

  async forceFlush (): Promise<void> {}

  async shutdown (): Promise<void> {
    this.#stopped = true
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
  }
}

/**
 * Deletes the oldest trace files of `dir` (by modification time) until the rest total at most
 * `bytesMax`; returns the names deleted. For a stack dir kept across runs (scripts/stack.ts).
 */
export function pruneTraceFiles (dir: string, bytesMax: number): string[] {
  const files = readdirSync(dir).filter((name) => name.endsWith(traceFileSuffix))
    .map((name) => ({ name, stat: statSync(join(dir, name)) }))
    .sort((a, b) => b.stat.mtimeMs - a.stat.mtimeMs)
  let kept = 0
  const deleted: string[] = []
  for (const { name, stat } of files) {
    if (kept + stat.size <= bytesMax) {
      kept += stat.size
      continue
    }
    unlinkSync(join(dir, name))
    deleted.push(name)
  }
  return deleted
}
