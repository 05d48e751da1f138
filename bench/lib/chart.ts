// A small SVG renderer for the bench's charts (no browser, no dependency): stacked line panels
// sharing an x axis in seconds, linear or log-10 y axes, plus an optional bar panel for the
// per-target medians. Output is a standalone SVG document.

export interface LinePoint {
  x: number
  y: number
}

export interface LineSeries {
  label: string
  color: string
  /** SVG stroke-dasharray, e.g. "6 3". */
  dash?: string
  points: LinePoint[]
}

export interface LinePanel {
  title: string
  yLabel: string
  log?: boolean
  series: LineSeries[]
}

export interface Bar {
  label: string
  color: string
  value: number
  /** Text after the bar's value. */
  note?: string
}

export interface ChartSpec {
  title: string
  subtitle: string
  xLabel: string
  bars?: { title: string, unit: string, items: Bar[] }
  panels: LinePanel[]
  legend: Array<{ label: string, color: string, dash?: string }>
}

const width = 1000
const marginLeft = 80
const marginRight = 24
const panelHeight = 230
const panelGap = 72
const headerHeight = 70
const legendRowHeight = 20
const barRowHeight = 26

function esc (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function fmt (value: number): string {
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs >= 1000) return `${Math.round(value / 100) / 10}k`.replace('.0k', 'k')
  if (abs >= 10) return String(Math.round(value))
  if (abs >= 1) return String(Math.round(value * 10) / 10)
  return String(Number(value.toPrecision(2)))
}

/** 1-2-5 ticks covering 0..max. */
function linearTicks (max: number): number[] {
  if (!(max > 0)) return [0, 1]
  const rough = max / 5
  const magnitude = 10 ** Math.floor(Math.log10(rough))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude
  const ticks: number[] = []
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(v)
  return ticks
}

/** Decades with 1-2-5 steps covering min..max. */
function logTicks (min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min))
  const hi = Math.ceil(Math.log10(max))
  const ticks: number[] = []
  for (let e = lo; e <= hi; e++) for (const m of [1, 2, 5]) ticks.push(m * 10 ** e)
  return ticks.filter((t) => t >= 10 ** lo && t <= 10 ** hi)
}

function linePanel (panel: LinePanel, top: number, xMax: number, xLabel: string): string {
  const plotWidth = width - marginLeft - marginRight
  const ys = panel.series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => Number.isFinite(y) && (!panel.log || y > 0))
  const out: string[] = []
  out.push(`<text x="${marginLeft}" y="${top - 10}" class="panel-title">${esc(panel.title)}</text>`)
  out.push(`<rect x="${marginLeft}" y="${top}" width="${plotWidth}" height="${panelHeight}" class="plot"/>`)
  const sx = (x: number): number => marginLeft + (xMax > 0 ? (x / xMax) * plotWidth : 0)
  let sy: (y: number) => number
  let ticks: number[]
  if (ys.length === 0) {
    ticks = []
    sy = () => top + panelHeight
    out.push(`<text x="${marginLeft + plotWidth / 2}" y="${top + panelHeight / 2}" class="empty">no data</text>`)
  } else if (panel.log === true) {
    const min = Math.min(...ys)
    const max = Math.max(...ys)
    ticks = logTicks(min, max)
    const lo = Math.log10(ticks[0] as number)
    const hi = Math.log10(ticks[ticks.length - 1] as number)
    const span = hi - lo || 1
    sy = (y: number) => top + panelHeight - ((Math.log10(y) - lo) / span) * panelHeight
  } else {
    ticks = linearTicks(Math.max(...ys))
    const max = ticks[ticks.length - 1] as number
    sy = (y: number) => top + panelHeight - (max > 0 ? (y / max) * panelHeight : 0)
  }
  for (const tick of ticks) {
    const y = sy(tick).toFixed(1)
    out.push(`<line x1="${marginLeft}" x2="${width - marginRight}" y1="${y}" y2="${y}" class="grid"/>`)
    out.push(`<text x="${marginLeft - 6}" y="${y}" class="ytick">${fmt(tick)}</text>`)
  }
  for (const tick of linearTicks(xMax)) {
    if (tick > xMax) continue
    const x = sx(tick).toFixed(1)
    out.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + panelHeight}" class="grid"/>`)
    out.push(`<text x="${x}" y="${top + panelHeight + 16}" class="xtick">${fmt(tick)}</text>`)
  }
  out.push(`<text x="${marginLeft + plotWidth / 2}" y="${top + panelHeight + 34}" class="axis">${esc(xLabel)}</text>`)
  out.push(`<text transform="translate(${20},${top + panelHeight / 2}) rotate(-90)" class="axis">${esc(panel.yLabel)}</text>`)
  for (const series of panel.series) {
    const pts = series.points.filter((p) => Number.isFinite(p.y) && (!panel.log || p.y > 0))
    if (pts.length === 0) continue
    const d = pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')
    const dash = series.dash ? ` stroke-dasharray="${series.dash}"` : ''
    out.push(`<polyline points="${d}" fill="none" stroke="${series.color}" stroke-width="1.8"${dash}><title>${esc(series.label)}</title></polyline>`)
    for (const p of pts) out.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="2" fill="${series.color}"/>`)
  }
  return out.join('\n')
}

function barPanel (bars: NonNullable<ChartSpec['bars']>, top: number): string {
  const labelWidth = 170
  // Room right of the longest bar for its value and note.
  const plotWidth = width - marginLeft - marginRight - labelWidth - 240
  const max = Math.max(1, ...bars.items.map((b) => b.value).filter(Number.isFinite))
  const out = [`<text x="${marginLeft}" y="${top - 10}" class="panel-title">${esc(bars.title)}</text>`]
  bars.items.forEach((bar, i) => {
    const y = top + i * barRowHeight
    const w = Number.isFinite(bar.value) ? (bar.value / max) * plotWidth : 0
    out.push(`<text x="${marginLeft + labelWidth - 8}" y="${y + 13}" class="ytick">${esc(bar.label)}</text>`)
    out.push(`<rect x="${marginLeft + labelWidth}" y="${y + 2}" width="${w.toFixed(1)}" height="${barRowHeight - 8}" fill="${bar.color}"/>`)
    const text = `${Number.isFinite(bar.value) ? Math.round(bar.value).toLocaleString('en-US') : 'n/a'} ${bars.unit}${bar.note ? `  ${bar.note}` : ''}`
    out.push(`<text x="${marginLeft + labelWidth + w + 6}" y="${y + 13}" class="barval">${esc(text)}</text>`)
  })
  return out.join('\n')
}

export function renderChart (spec: ChartSpec): string {
  const xMax = Math.max(1, ...spec.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt.x + 1))))
  const legendRows = Math.ceil(spec.legend.length / 4)
  const barsHeight = spec.bars ? spec.bars.items.length * barRowHeight + 40 : 0
  let top = headerHeight + legendRows * legendRowHeight + 24
  const parts: string[] = []
  if (spec.bars) {
    parts.push(barPanel(spec.bars, top))
    top += barsHeight
  }
  for (const panel of spec.panels) {
    parts.push(linePanel(panel, top, xMax, spec.xLabel))
    top += panelHeight + panelGap
  }
  const height = top
  const legend = spec.legend.map((item, i) => {
    const x = marginLeft + (i % 4) * 225
    const y = headerHeight + Math.floor(i / 4) * legendRowHeight
    const dash = item.dash ? ` stroke-dasharray="${item.dash}"` : ''
    return `<line x1="${x}" x2="${x + 26}" y1="${y}" y2="${y}" stroke="${item.color}" stroke-width="2.5"${dash}/>` +
      `<text x="${x + 32}" y="${y + 4}" class="legend">${esc(item.label)}</text>`
  })
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">
<style>
  .title { font-size: 18px; font-weight: 600; fill: #111; }
  .subtitle { font-size: 12px; fill: #555; }
  .panel-title { font-size: 13px; font-weight: 600; fill: #222; }
  .plot { fill: #fcfcfd; stroke: #bbb; }
  .grid { stroke: #e4e4e8; stroke-width: 1; }
  .ytick { font-size: 11px; fill: #444; text-anchor: end; dominant-baseline: middle; }
  .xtick { font-size: 11px; fill: #444; text-anchor: middle; }
  .axis { font-size: 12px; fill: #333; text-anchor: middle; }
  .legend { font-size: 12px; fill: #222; }
  .barval { font-size: 12px; fill: #222; }
  .empty { font-size: 13px; fill: #999; text-anchor: middle; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${marginLeft}" y="28" class="title">${esc(spec.title)}</text>
<text x="${marginLeft}" y="48" class="subtitle">${esc(spec.subtitle)}</text>
${legend.join('\n')}
${parts.join('\n')}
</svg>
`
}
