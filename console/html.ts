// Server-rendered HTML: one escape function every interpolated value goes through, one layout.
// No script runs but the console's own (CSP: script-src 'self'; no inline script).

import type { Session } from './auth.ts'

/** Escapes text for HTML element content and double-quoted attributes. */
export function esc (value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** A tagged template whose `${}` values are escaped; nest `raw()` for markup already built. */
export class Raw {
  readonly html: string
  constructor (markup: string) {
    this.html = markup
  }
}
export function raw (html: string): Raw {
  return new Raw(html)
}
function render (value: unknown): string {
  if (Array.isArray(value)) return value.map(render).join('')
  return value instanceof Raw ? value.html : esc(value)
}

export function html (strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0]!
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!
  })
  return new Raw(out)
}

export function csrfField (session: Session): Raw {
  return html`<input type="hidden" name="_csrf" value="${session.csrfToken}">`
}

/** Integer minor units shown with the currency's code, never as a float sum. */
export function money (amount: number | string | null | undefined, currency: string | null | undefined): string {
  if (amount === null || amount === undefined) return '—'
  return `${String(amount)} ${currency ?? ''} (minor units)`
}

export function when (value: Date | string | null | undefined): string {
  if (value === null || value === undefined) return '—'
  return value instanceof Date ? value.toISOString() : String(value)
}

const nav: Array<[string, string]> = [
  ['/payments', 'Payments'],
  ['/flagged', 'Flagged'],
  ['/dead-letters', 'Dead letters'],
  ['/reconciliation', 'Reconciliation'],
  ['/health', 'Health'],
]

export function page (title: string, session: Session | undefined, body: Raw): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Ringpay console</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script></head>
<body>
<header><strong>Ringpay console</strong>${session === undefined ? '' : `
<nav>${nav.map(([href, label]) => `<a href="${href}">${label}</a>`).join(' ')}</nav>
<form method="post" action="/logout" class="inline"><span class="who">${esc(session.operator)} (${esc(session.role)})</span>
<input type="hidden" name="_csrf" value="${esc(session.csrfToken)}"><button type="submit">Sign out</button></form>`}
</header>
<main><h1>${esc(title)}</h1>
${body.html}
</main></body></html>
`
}

export const stylesheet = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1em; background: #1d3557; color: #fff; }
header a { color: #fff; margin-right: 1em; }
header form { margin-left: auto; }
main { padding: 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; font-size: 13px; }
th { background: #f1f1f1; }
td.diff, span.diff { background: #ffd6d6; font-weight: bold; }
.inline { display: inline; }
form.filters label { margin-right: 1em; }
.error { color: #a00; }
.ok { color: #060; }
.muted { color: #777; }
textarea { width: 30em; height: 3em; }
`

/** The only script: confirmation of the actions that change something. */
export const script = `
document.addEventListener('submit', function (event) {
  var form = event.target;
  var question = form.getAttribute('data-confirm');
  if (question && !window.confirm(question)) event.preventDefault();
});
`
