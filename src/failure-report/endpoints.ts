/**
 * The worst endpoints of a route, in bounded memory: request paths are
 * normalised (ids folded into `:id`, query dropped, depth and length
 * capped) and counted with the Space-Saving algorithm (Metwally et al.,
 * 2005), which keeps at most `capacity` counters and still finds every
 * path whose share of failures is above 1/capacity. A path that evicts
 * another inherits its count as `error`: the true count lies in
 * [count - error, count].
 */
import type { ErrorClass } from '../core/errors.js'

const MAX_SEGMENTS = 6
const MAX_PATH = 160
const NUMERIC = /^\d+$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// Long hex or base64url-ish tokens (object ids, hashes, opaque keys) carry no endpoint identity.
const TOKEN = /^(?=.*\d)[0-9a-zA-Z_-]{16,}$/

/** `/orders/123/items?x=1` -> `/orders/:id/items`; bounded in depth and length. */
export function normalisePath (url: string): string {
  const q = url.search(/[?#]/)
  const path = q === -1 ? url : url.slice(0, q)
  const segments = path.split('/').filter((s) => s !== '')
  const out: string[] = []
  for (const s of segments.slice(0, MAX_SEGMENTS)) {
    out.push(NUMERIC.test(s) || UUID.test(s) || TOKEN.test(s) ? ':id' : s)
  }
  let normal = '/' + out.join('/') + (segments.length > MAX_SEGMENTS ? '/...' : '')
  if (normal.length > MAX_PATH) normal = normal.slice(0, MAX_PATH) + '...'
  return normal
}

interface Entry { count: number, error: number, classes: Partial<Record<ErrorClass | 'other', number>> }

export interface WorstEndpoint {
  method: string
  path: string
  failures: number
  /** Over-count bound from evictions (0 when exact). */
  overcount: number
  errorClasses: Partial<Record<ErrorClass | 'other', number>>
}

export class TopFailures {
  private readonly capacity: number
  private readonly entries = new Map<string, Entry>()

  constructor (capacity = 64) { this.capacity = capacity }

  record (method: string, url: string, errorClass: ErrorClass | undefined): void {
    const key = method + ' ' + normalisePath(url)
    let entry = this.entries.get(key)
    if (entry === undefined) {
      if (this.entries.size < this.capacity) {
        entry = { count: 0, error: 0, classes: {} }
      } else {
        // Evict the smallest counter; the newcomer inherits its count (Space-Saving).
        let minKey = ''
        let min = Infinity
        for (const [k, e] of this.entries) if (e.count < min) { min = e.count; minKey = k }
        this.entries.delete(minKey)
        entry = { count: min, error: min, classes: {} }
      }
      this.entries.set(key, entry)
    }
    entry.count++
    const cls = errorClass ?? 'other'
    entry.classes[cls] = (entry.classes[cls] ?? 0) + 1
  }

  top (n: number): WorstEndpoint[] {
    return [...this.entries.entries()]
      .sort((a, b) => b[1].count - a[1].count)
      .slice(0, n)
      .map(([key, e]) => {
        const space = key.indexOf(' ')
        return { method: key.slice(0, space), path: key.slice(space + 1), failures: e.count, overcount: e.error, errorClasses: { ...e.classes } }
      })
  }

  get size (): number { return this.entries.size }
}
