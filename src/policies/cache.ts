/**
 * The last-known-good cache: 2xx GET/HEAD answers are stored as they
 * stream to the client (teed, never buffered before the client gets its
 * response), and served by the cache fallback when a later request for the
 * same key fails. Key: method, upstream path with query, and the request
 * headers the response's Vary names.
 *
 * The HTTP rules come from http-cache-semantics, as a shared cache:
 * no-store, private, Authorization without public, Vary: * and Set-Cookie
 * are never stored; age and freshness follow Date/Age/max-age/Expires.
 * Past its freshness an entry is served for `maxStaleMs` more, or for the
 * response's own stale-if-error (RFC 5861) when it has one, and never when
 * it says no-cache, must-revalidate, proxy-revalidate or s-maxage (RFC
 * 9111 §4.2.4) without stale-if-error.
 *
 * Containment (docs/POLICIES.md): an answer any fault touched is never
 * stored; answers to requests with Authorization or Cookie are kept per
 * the route's `credentials` mode (by default not at all); a successful
 * unsafe request invalidates its target and same-origin Location and
 * Content-Location (RFC 9111 §4.4).
 */
import { createHash } from 'node:crypto'
import { Readable, Transform, pipeline } from 'node:stream'
import CachePolicy from 'http-cache-semantics'
import { LRUCache } from 'lru-cache'
import type { RequestContext } from '../core/context.js'
import type { UpstreamResponse } from '../core/pipeline.js'
import type { CacheConfig } from './schema.js'
import type { PolicyEvents } from './events.js'
import type { CacheKey, CacheStore, CacheStoreDescription, CacheStoreStats, CacheValue } from './cache-store.js'
import { primaryKey, variantKey, varyValue } from './cache-store.js'

/** GET /routes for a cache: its size against its limits, and a shared store's own part. */
export type CacheSnapshot = CacheStoreStats & Partial<CacheStoreDescription> & { maxEntries: number, maxBytes: number, maxStaleMs: number }

/** How long past freshness (ms) a response may still be served on error. */
export function staleAllowanceMs (rescc: Record<string, string>, maxStaleMs: number): number {
  const sie = rescc['stale-if-error']
  if (sie !== undefined && /^\d+$/.test(String(sie))) return Number(sie) * 1000
  if ('no-cache' in rescc || 'must-revalidate' in rescc || 'proxy-revalidate' in rescc || 's-maxage' in rescc) return 0
  return maxStaleMs
}

function headerList (value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '')
}

function noop (): void {}

/**
 * The pseudo request header a per-credential entry varies on: a hash of
 * the request's Authorization and Cookie, never the values themselves.
 * Set by the cache on its own copy of the headers, so a client cannot
 * choose it.
 */
export const CREDENTIAL_VARY = 'x-faultline-credential'

/** A hash of the request's credentials, or undefined when it carries none. */
export function credentialOf (headers: CacheKey['headers']): string | undefined {
  const auth = headers.authorization
  const cookie = headers.cookie
  if (auth === undefined && cookie === undefined) return undefined
  return createHash('sha256').update(varyValue(headers, 'authorization') ?? '').update('\u0000').update(varyValue(headers, 'cookie') ?? '').digest('base64url')
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/** The upstream path (with query) a Location or Content-Location names, when it is on the same origin. */
function sameOriginPath (value: string | string[] | undefined, base: URL): string | undefined {
  if (typeof value !== 'string') return undefined
  try {
    const url = new URL(value, base)
    return url.origin === base.origin ? url.pathname + url.search : undefined
  } catch {
    return undefined
  }
}

export class LastKnownGood {
  readonly store: CacheStore
  private readonly config: CacheConfig
  private readonly events: PolicyEvents
  /** When each variant was last teed into the store (performance.now()), for refreshMs. */
  private readonly teedAt: LRUCache<string, number> | undefined

  constructor (store: CacheStore, config: CacheConfig, events: PolicyEvents) {
    this.store = store
    this.config = config
    this.events = events
    this.teedAt = config.refreshMs > 0 ? new LRUCache<string, number>({ max: config.maxEntries }) : undefined
  }

  /** True when this variant was teed within refreshMs; otherwise notes that it is being teed now. */
  private teedRecently (key: CacheKey, varyNames: readonly string[]): boolean {
    const teedAt = this.teedAt
    if (teedAt === undefined) return false
    const variant = variantKey(primaryKey(key), varyNames, key.headers)
    const now = performance.now()
    const last = teedAt.get(variant)
    if (last !== undefined && now - last < this.config.refreshMs) return true
    teedAt.set(variant, now)
    return false
  }

  /**
   * The key for this request, or undefined when its credentials keep it out
   * of the cache (mode `bypass`). Per credential, the key carries the
   * credential hash as a Vary value, so each user has their own variants and
   * an invalidation still reaches them all.
   */
  key (ctx: RequestContext): CacheKey | undefined {
    let headers = ctx.req.headers
    // The pseudo-header is the cache's own: a client-sent copy would let an anonymous request
    // read or overwrite a user's variant.
    if (headers[CREDENTIAL_VARY] !== undefined) {
      const { [CREDENTIAL_VARY]: _forged, ...rest } = headers
      headers = rest
    }
    const mode = this.config.credentials
    if (mode === 'shared' || (headers.authorization === undefined && headers.cookie === undefined)) {
      return { method: ctx.method, path: ctx.upstreamPath, headers }
    }
    if (mode === 'bypass') return undefined
    return { method: ctx.method, path: ctx.upstreamPath, headers: { ...headers, [CREDENTIAL_VARY]: credentialOf(headers) } }
  }

  /** The request headers the HTTP caching rules judge: in `shared` mode credentials are not the cache's concern. */
  private policyHeaders (key: CacheKey): CacheKey['headers'] {
    if (this.config.credentials !== 'shared' || (key.headers.authorization === undefined && key.headers.cookie === undefined)) return key.headers
    const { authorization: _a, cookie: _c, ...rest } = key.headers
    return rest
  }

  /**
   * After a successful unsafe request (RFC 9111 §4.4): forget the stored
   * answers for its target and for a same-origin Location or
   * Content-Location, for every credential.
   */
  invalidate (ctx: RequestContext, response: UpstreamResponse, origin: URL): void {
    const status = response.statusCode
    if (SAFE_METHODS.has(ctx.method) || status < 200 || status > 399) return
    const base = new URL(ctx.upstreamPath, origin)
    const paths = new Set([ctx.upstreamPath])
    for (const name of ['location', 'content-location']) {
      const path = sameOriginPath(response.headers[name], base)
      if (path !== undefined) paths.add(path)
    }
    for (const path of paths) {
      for (const method of ['GET', 'HEAD']) {
        try {
          void Promise.resolve(this.store.delete({ method, path, headers: {} })).catch(noop)
        } catch {
          // A store that fails to delete keeps its entry until it expires; the answer still goes out.
        }
      }
    }
  }

  /** The response unchanged, or with its body teed into the store when it may be kept. */
  tee (ctx: RequestContext, response: UpstreamResponse): UpstreamResponse {
    const method = ctx.method
    const status = response.statusCode
    if ((method !== 'GET' && method !== 'HEAD') || status < 200 || status > 299 || status === 206) return response
    // Only real answers become last-known-good: a body, header or status a fault shaped never does.
    if (ctx.attemptInjected) return response
    const headers = response.headers
    if (headers['set-cookie'] !== undefined) return response
    const length = Number(headers['content-length'])
    if (Number.isFinite(length) && length > this.config.maxEntryBytes) return response
    const varyNames = headerList(headers.vary)
    if (varyNames.includes('*')) return response
    const key = this.key(ctx)
    if (key === undefined) return response
    // Every variant per credential names the credential, an anonymous one too (as absent), so users and the anonymous never share one.
    if (this.config.credentials === 'perCredential') varyNames.push(CREDENTIAL_VARY)
    if (this.teedRecently(key, varyNames)) return response
    // Per credential the store is a private cache for each user (`private` answers may be kept); otherwise a shared one.
    const shared = key.headers[CREDENTIAL_VARY] === undefined
    const policy = new CachePolicy({ method, url: ctx.upstreamPath, headers: this.policyHeaders(key) }, { status, headers }, { shared })
    if (!policy.storable()) return response
    const state = policy.toObject()
    const servableMs = (policy.maxAge() - policy.age()) * 1000 + staleAllowanceMs(state.rescc, this.config.maxStaleMs)
    if (servableMs <= 0) return response
    const now = Date.now()
    const stored: Record<string, string | string[]> = {}
    for (const name in headers) { const v = headers[name]; if (v !== undefined) stored[name] = v }
    let vary: CacheValue['vary']
    if (varyNames.length > 0) {
      vary = {}
      for (const name of varyNames) vary[name] = varyValue(key.headers, name)
    }
    const writer = this.store.createWriteStream(key, { statusCode: status, headers: stored, vary, cachedAt: now, deleteAt: now + servableMs, policy: state })
    if (writer === undefined) return response
    writer.on('error', noop)
    writer.once('finish', () => { this.events.cacheStored() })
    const tee = new Transform({
      transform (chunk: Buffer, _enc, cb) {
        if (!writer.destroyed) writer.write(chunk)
        cb(null, chunk)
      }
    })
    // An upstream body error or a client that leaves discards the entry: only complete bodies are kept.
    pipeline(response.body, tee, (err) => {
      if (err) writer.destroy()
      else writer.end()
    })
    return { statusCode: status, headers, body: tee }
  }

  /** The stored answer for this request, if one is still servable. */
  async lookup (ctx: RequestContext): Promise<UpstreamResponse | undefined> {
    const key = this.key(ctx)
    if (key === undefined) {
      this.events.cacheLookup('miss')
      return undefined
    }
    let entry
    try {
      entry = await this.store.get(key)
    } catch {
      entry = undefined
    }
    if (entry !== undefined) {
      const policy = CachePolicy.fromObject(entry.policy)
      const age = policy.age()
      const maxAge = policy.maxAge()
      const result = age < maxAge ? 'hit' : (age - maxAge) * 1000 <= staleAllowanceMs(entry.policy.rescc, this.config.maxStaleMs) ? 'stale' : undefined
      if (result !== undefined) {
        this.events.cacheLookup(result)
        return {
          statusCode: entry.statusCode,
          headers: { ...entry.headers, age: String(Math.floor(age)) },
          body: Readable.from(ctx.method === 'HEAD' ? [] : [entry.body])
        }
      }
    }
    this.events.cacheLookup('miss')
    return undefined
  }

  snapshot (): CacheSnapshot {
    return { ...this.store.stats(), maxEntries: this.config.maxEntries, maxBytes: this.config.maxBytes, maxStaleMs: this.config.maxStaleMs, ...this.store.describe?.() }
  }
}
