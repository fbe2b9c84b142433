/**
 * Route matching: longest path prefix wins, on a segment boundary
 * (/pay matches /pay, /pay/x and /pay?q but not /payments). Host and
 * methods narrow a match. A RouteTable is immutable: a reload builds a new
 * one and swaps the reference, so in-flight requests keep theirs.
 */
import type { RouteRuntime } from './route.js'

function prefixMatches (prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false
  if (path.length === prefix.length || prefix.endsWith('/')) return true
  const next = path.charCodeAt(prefix.length)
  return next === 47 /* / */ || next === 63 /* ? */
}

export class RouteTable {
  /** Longest prefix first; host-specific routes before host-less ones of the same length. */
  readonly routes: readonly RouteRuntime[]

  constructor (routes: RouteRuntime[]) {
    this.routes = [...routes].sort((a, b) =>
      b.prefix.length - a.prefix.length || Number(b.host !== undefined) - Number(a.host !== undefined))
  }

  /** The route for a request, or undefined. `host` is the Host header without port, lower-cased. */
  match (url: string, method: string, host: string | undefined): RouteRuntime | undefined {
    for (const route of this.routes) {
      if (!prefixMatches(route.prefix, url)) continue
      if (route.host !== undefined && route.host !== host) continue
      if (route.methods !== undefined && !route.methods.has(method)) continue
      return route
    }
    return undefined
  }

  get (name: string): RouteRuntime | undefined {
    return this.routes.find((r) => r.name === name)
  }
}

/** Host header without port, lower-cased; undefined when absent. */
export function hostOf (header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  if (header.startsWith('[')) {
    const end = header.indexOf(']')
    return (end > 0 ? header.slice(0, end + 1) : header).toLowerCase()
  }
  const colon = header.indexOf(':')
  return (colon === -1 ? header : header.slice(0, colon)).toLowerCase()
}
