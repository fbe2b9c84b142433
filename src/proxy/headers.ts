/**
 * Header hygiene for a forwarding proxy (RFC 9110 §7.6.1): hop-by-hop
 * fields and every field named in Connection are for this hop only and are
 * never forwarded in either direction.
 *
 * Requests are rebuilt as a flat [name, value, ...] array straight from
 * rawHeaders: one pass, no intermediate object, original casing and
 * duplicates preserved.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { asksForTrailers } from '../core/context.js'
import type { ForwardingTrust } from './trust.js'

/** Never forwarded upstream. `host` is re-derived from the upstream origin; `expect` is answered here. */
const REQUEST_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-request-id',
  // Fault triggers are for faultline alone: an upstream must never see them.
  'x-faultline-fault'
])

/** Never copied back to the client; Node's server sets framing itself. */
const RESPONSE_DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade'
])

/** Extra names a Connection header lists, lower-cased; empty in the common case. */
function connectionTokens (value: string | string[] | undefined): Set<string> | undefined {
  // Nearly every request and response says just one of these: no parsing.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined
  const joined = Array.isArray(value) ? value.join(',') : value
  let tokens: Set<string> | undefined
  for (const raw of joined.split(',')) {
    const token = raw.trim().toLowerCase()
    if (token && token !== 'close' && token !== 'keep-alive') (tokens ??= new Set()).add(token)
  }
  return tokens
}

/**
 * Builds the upstream request headers: the client's end-to-end headers plus
 * X-Forwarded-For/-Proto/-Host and X-Request-Id. The client's own
 * X-Forwarded-* are kept (and appended to) only when its address is in
 * `trust` (listen.trustedProxies); from anyone else they are replaced by
 * what faultline saw (docs/SECURITY.md).
 */
export function upstreamRequestHeaders (req: IncomingMessage, requestId: string, trust?: ForwardingTrust): string[] {
  const raw = req.rawHeaders
  const listed = connectionTokens(req.headers.connection)
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    if (REQUEST_DROP.has(lower) || (listed !== undefined && listed.has(lower))) {
      // TE is hop-by-hop, but "trailers" says this hop can take them too: ask the upstream for them.
      if (lower === 'te' && asksForTrailers(raw[i + 1])) out.push('te', 'trailers')
      continue
    }
    out.push(name, raw[i + 1]!)
  }
  const peer = req.socket.remoteAddress
  const client = peer ?? 'unknown'
  const trusted = trust !== undefined && trust.trusts(peer)
  const prior = trusted ? req.headers['x-forwarded-for'] : undefined
  out.push('x-forwarded-for', prior ? `${prior}, ${client}` : client)
  const proto = trusted ? req.headers['x-forwarded-proto'] : undefined
  out.push('x-forwarded-proto', typeof proto === 'string' ? proto : 'http')
  const host = (trusted ? req.headers['x-forwarded-host'] : undefined) ?? req.headers.host
  if (host !== undefined) out.push('x-forwarded-host', Array.isArray(host) ? host[0]! : host)
  out.push('x-request-id', requestId)
  return out
}

/** The upstream response headers the client may see. */
export function clientResponseHeaders (headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionTokens(headers.connection)
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || RESPONSE_DROP.has(name) || (listed !== undefined && listed.has(name))) continue
    out[name] = value
  }
  return out
}

/** True when the request carries a body to forward (RFC 9112 §6.3). */
export function hasRequestBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}
