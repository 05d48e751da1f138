// Request-duration observations without prom-client's per-call label hashing: `observe` with a
// labels object hashes it on every call (~2 % of the accept path's CPU). The labeled child of
// each (route, method, status) is looked up once and kept; the set is small and bounded, and past
// `labeledChildrenCachedMax` observations fall back to the uncached call.

import type { Histogram } from 'prom-client'

export const labeledChildrenCachedMax = 512

type Child = ReturnType<Histogram<'route' | 'method' | 'status'>['labels']>

export class RequestDurationRecorder {
  readonly #histogram: Histogram<'route' | 'method' | 'status'>
  readonly #children = new Map<string, Child>()

  constructor (histogram: Histogram<'route' | 'method' | 'status'>) {
    this.#histogram = histogram
  }

  observe (route: string, method: string, status: number | 'none', seconds: number): void {
    const key = `${route} ${method} ${status}`
    let child = this.#children.get(key)
    if (child === undefined) {
      const statusText = String(status)
      if (this.#children.size >= labeledChildrenCachedMax) {
        this.#histogram.observe({ route, method, status: statusText }, seconds)
        return
      }
      child = this.#histogram.labels(route, method, statusText)
      this.#children.set(key, child)
    }
    child.observe(seconds)
  }
}
