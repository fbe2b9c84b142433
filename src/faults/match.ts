/**
 * A fault's matchers compiled once: methods, a path glob (picomatch) on
 * the client's path, and headers equal to a value or merely present.
 * A fault without matchers has no matcher at all (nothing runs per request).
 */
import picomatch from 'picomatch'
import type { RequestContext } from '../proxy/context.js'
import type { FaultMatch } from './fault.js'

export type Matcher = (ctx: RequestContext) => boolean

export function compileMatch (match: FaultMatch | undefined): Matcher | undefined {
  if (match === undefined) return undefined
  const methods = match.methods === undefined ? undefined : new Set<string>(match.methods)
  const path = match.path === undefined ? undefined : picomatch(match.path, { dot: true })
  const headers = match.headers === undefined ? undefined : Object.entries(match.headers).map(([name, value]) => [name.toLowerCase(), value] as const)
  if (methods === undefined && path === undefined && headers === undefined) return undefined
  return (ctx) => {
    if (methods !== undefined && !methods.has(ctx.method)) return false
    if (path !== undefined) {
      const url = ctx.req.url ?? '/'
      const q = url.indexOf('?')
      if (!path(q === -1 ? url : url.slice(0, q))) return false
    }
    if (headers !== undefined) {
      for (const [name, value] of headers) {
        const actual = ctx.req.headers[name]
        if (actual === undefined) return false
        if (value !== true && (Array.isArray(actual) ? !actual.includes(value) : actual !== value)) return false
      }
    }
    return true
  }
}
