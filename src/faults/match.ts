/**
 * A fault's matchers compiled once: methods, a path glob on the client's
 * path (dot-segments resolved, as the router sees it), and headers equal
 * to a value or merely present. A fault without matchers has no matcher
 * at all (nothing runs per request). The glob matcher is ours (glob.ts):
 * its cost is bounded by path × pattern length, so no crafted path can
 * block the event loop, as picomatch's backtracking regex could.
 */
import { z } from 'zod'
import { HTTP_METHODS } from '../config/http-methods.js'
import type { RequestContext } from '../core/context.js'
import { normalizeTarget } from '../core/path.js'
import { compileGlob, globProblem } from './glob.js'

export const faultMatchSchema = z.strictObject({
  methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
  /** A glob on the client's request path (before any rewrite, without the query): `/users/*`, `/**\/export`. */
  path: z.string().min(1).superRefine((glob, ctx) => {
    const problem = globProblem(glob)
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${problem}, got ${JSON.stringify(glob.slice(0, 80))}` })
  }).optional(),
  /** Header name → exact value, or `true` for "present with any value". */
  headers: z.record(z.string().min(1), z.union([z.string(), z.literal(true)])).optional()
})
export type FaultMatch = z.infer<typeof faultMatchSchema>

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
