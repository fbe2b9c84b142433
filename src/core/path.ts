/**
 * The request path as routes see it (docs/SECURITY.md, "Paths"). Routing
 * on the raw target would let `/public/../admin` match `/public` while an
 * upstream that normalises serves `/admin`: the route's methods, limits
 * and chaos bypassed, and the path outside the route's prefix after a
 * rewrite. So dot-segments, plain or percent-encoded, are resolved first
 * (RFC 3986 §5.2.4) and the route is matched on the result, which is also
 * what goes upstream. What cannot be normalised safely is refused (400):
 * an encoded slash or backslash (a segment boundary only some upstreams
 * see), a NUL, a backslash, a malformed %-escape, and a `..;` or `.;`
 * segment (Tomcat-style path parameters hiding a dot-segment).
 */

import { FaultlineError } from './errors.js'

export class BadPathError extends FaultlineError {
  constructor (message: string) {
    super('bad_path', message)
    this.name = 'BadPathError'
  }
}

/** Resolves "." and ".." segments of an absolute path (RFC 3986 §5.2.4); never climbs above "/". */
export function removeDotSegments (path: string): string {
  const out: string[] = []
  const segments = path.split('/')
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!
    const last = i === segments.length - 1
    if (s === '.') {
      if (last) out.push('')
    } else if (s === '..') {
      out.pop()
      if (last) out.push('')
    } else {
      out.push(s)
    }
  }
  return '/' + out.join('/')
}

const HEX = /^[0-9a-fA-F]{2}$/

/**
 * The normalised target (path, then the query untouched), or throws
 * BadPathError. A target without "%", "\" or "/." is returned as it is: the
 * common case costs three indexOf calls.
 */
export function normalizeTarget (url: string): string {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (path.indexOf('%') === -1 && path.indexOf('/.') === -1 && path.indexOf('\\') === -1) return url
  // Absolute-form and asterisk-form targets match no route; leave them to the router's 404.
  if (path[0] !== '/') return url
  if (path.indexOf('\\') !== -1) throw new BadPathError('a backslash in the path is refused (some upstreams read it as "/")')
  let decoded = path
  if (path.indexOf('%') !== -1) {
    decoded = path.replace(/%(..?)/g, (match: string, hex: string) => {
      if (!HEX.test(hex)) throw new BadPathError(`malformed percent-escape "${match}" in the path`)
      const code = parseInt(hex, 16)
      // "." is unreserved: %2e and "." are the same character (RFC 3986 §2.3, §6.2.2.2).
      if (code === 0x2e) return '.'
      if (code === 0x2f || code === 0x5c) throw new BadPathError('an encoded "/" or "\\" in the path is refused (upstreams disagree on whether it separates segments)')
      if (code === 0) throw new BadPathError('an encoded NUL in the path is refused')
      return match
    })
  }
  for (const segment of decoded.split('/')) {
    const semi = segment.indexOf(';')
    if (semi !== -1) {
      const bare = segment.slice(0, semi)
      if (bare === '.' || bare === '..') throw new BadPathError('a dot-segment with path parameters (";") is refused')
    }
  }
  const resolved = removeDotSegments(decoded)
  return q === -1 ? resolved : resolved + url.slice(q)
}
