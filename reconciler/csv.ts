// A streaming CSV record splitter and cell parser (RFC 4180): text goes in chunk by chunk, complete
// records come out with the line number they start on. Memory is bounded by one record
// (`recordCharsMax`) plus the chunk being split: a day of any size streams through.
//
// - Records end with \n (a \r before it is dropped). A quoted cell may hold commas, "" (one quote)
//   and newlines; the record then spans several lines and the next record's line number counts them.
// - The input must end with a newline: text after the last \n when the input ends is a cut-off
//   record (`report_truncated`), however plausible it looks.
// - A quote inside an unquoted cell, text after a closing quote, or a record longer than
//   `recordCharsMax` is `report_malformed`, with the line number.

import { ReconcileError } from './errors.ts'

export interface CsvRecord {
  /** Line of the input the record starts on (first line = 1). */
  line: number
  cells: string[]
}

export class CsvSplitter {
  readonly #recordCharsMax: number
  #pending = ''
  #line = 1

  constructor (recordCharsMax: number) {
    this.#recordCharsMax = recordCharsMax
  }

  /** Line number the next record starts on. */
  get line (): number {
    return this.#line
  }

  /** Splits `chunk` (appended to what was left over) and hands every complete record to `onRecord`. */
  push (chunk: string, onRecord: (record: CsvRecord) => void): void {
    const text = this.#pending === '' ? chunk : this.#pending + chunk
    let start = 0
    let searchFrom = 0
    // First quote at or after `start` (-1: none left): records without quotes skip the quote scan.
    let nextQuote = text.indexOf('"')
    for (;;) {
      const newline = text.indexOf('\n', searchFrom)
      if (newline === -1) break
      const quoted = nextQuote !== -1 && nextQuote < newline
      // A record with an odd number of quotes so far continues past this newline (quoted cell).
      if (quoted && hasOpenQuote(text, start, newline, this.#line)) {
        if (newline - start > this.#recordCharsMax) this.#tooLong()
        searchFrom = newline + 1
        continue
      }
      const end = newline > start && text.charCodeAt(newline - 1) === 13 ? newline - 1 : newline
      if (end - start > this.#recordCharsMax) this.#tooLong()
      const raw = text.slice(start, end)
      const line = this.#line
      this.#line += quoted ? 1 + countNewlines(text, start, newline) : 1
      onRecord({ line, cells: parseCells(raw, line) })
      start = newline + 1
      searchFrom = start
      if (nextQuote !== -1 && nextQuote < start) nextQuote = text.indexOf('"', start)
    }
    this.#pending = start === 0 ? text : text.slice(start)
    if (this.#pending.length > this.#recordCharsMax) this.#tooLong()
  }

  /** The input ended: anything left over is a record cut off before its newline. */
  end (): void {
    if (this.#pending !== '') {
      throw new ReconcileError('report_truncated', `the last line ends without a newline (${this.#pending.length} characters cut off)`, { line: this.#line })
    }
  }

  #tooLong (): never {
    throw new ReconcileError('report_malformed', `record longer than ${this.#recordCharsMax} characters`, { line: this.#line })
  }
}

/**
 * Whether text[from, to) ends inside a quoted cell (the record goes on past `to`). A quote may only
 * open a cell; one inside an unquoted cell is refused here, before it could swallow the next lines.
 */
function hasOpenQuote (text: string, from: number, to: number, line: number): boolean {
  let inQuotes = false
  let cellStart = true
  let cell = 1
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (inQuotes) {
      if (c === 10) line++
      if (c === 34) {
        if (i + 1 < to && text.charCodeAt(i + 1) === 34) i++
        else inQuotes = false
      }
    } else if (c === 44) {
      cellStart = true
      cell++
      continue
    } else if (c === 34) {
      if (!cellStart) throw new ReconcileError('report_malformed', `quote inside unquoted cell ${cell}`, { line })
      inQuotes = true
    }
    cellStart = false
  }
  return inQuotes
}

function countNewlines (text: string, from: number, to: number): number {
  let n = 0
  for (let i = text.indexOf('\n', from); i !== -1 && i < to; i = text.indexOf('\n', i + 1)) n++
  return n
}

/** The cells of one record (without its line end). */
export function parseCells (raw: string, line: number): string[] {
  if (!raw.includes('"')) return raw.split(',')
  const cells: string[] = []
  let i = 0
  for (;;) {
    if (raw.charCodeAt(i) === 34) {
      // Quoted cell: up to the closing quote; "" is one quote.
      let value = ''
      let j = i + 1
      for (;;) {
        const quote = raw.indexOf('"', j)
        if (quote === -1) throw new ReconcileError('report_malformed', 'unterminated quoted cell', { line })
        value += raw.slice(j, quote)
        if (raw.charCodeAt(quote + 1) === 34) {
          value += '"'
          j = quote + 2
          continue
        }
        i = quote + 1
        break
      }
      cells.push(value)
      if (i === raw.length) return cells
      if (raw.charCodeAt(i) !== 44) throw new ReconcileError('report_malformed', `text after a closing quote in cell ${cells.length}`, { line })
      i++
      if (i === raw.length) {
        cells.push('')
        return cells
      }
    } else {
      const comma = raw.indexOf(',', i)
      const value = comma === -1 ? raw.slice(i) : raw.slice(i, comma)
      if (value.includes('"')) throw new ReconcileError('report_malformed', `quote inside unquoted cell ${cells.length + 1}`, { line })
      cells.push(value)
      if (comma === -1) return cells
      i = comma + 1
      if (i === raw.length) {
        cells.push('')
        return cells
      }
    }
  }
}
