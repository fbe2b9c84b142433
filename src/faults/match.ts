/**
 * A fault's matchers compiled once: methods, a path glob on the client's
 * path (dot-segments resolved, as the router sees it), and headers equal
 * to a value or merely present. A fault without matchers has no matcher
 * at all (nothing runs per request). The glob matcher is ours (glob.ts):
 * its cost is bounded by path × pattern length, so no crafted path can
 * block the event loop, as picomatch's backtracking regex could.
 */
import type { RequestContext } from '../proxy/context.js'
import { normalizeTarget } from '../proxy/path.js'
import { compileGlob } from './glob.js'
import type { FaultMatch } from './fault.js'

export type Matcher = (ctx: RequestContext) => boolean

export function compileMatch (match: FaultMatch | undefined): Matcher | undefined {
  if (match === undefined) return undefined
  const methods = match.methods === undefined ? undefined : new Set<string>(match.methods)
  const path = match.path === undefined ? undefined : compileGlob(match.path)
  const headers = match.headers === undefined ? undefined : Object.entries(match.headers).map(([name, value]) => [name.toLowerCase(), value] as const)
  if (methods === undefined && path === undefined && headers === undefined) return undefined
  return (ctx) => {
    if (methods !== undefined && !methods.has(ctx.method)) return false
    if (path !== undefined) {
      const url = clientPath(ctx.req.url ?? '/')
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

/** The path the router matched (the listener refused what cannot be normalised). */
function clientPath (url: string): string {
  try {
    return normalizeTarget(url)
  } catch {
    return url
  }
}
