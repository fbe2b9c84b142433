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
 */
import { Readable, Transform, pipeline } from 'node:stream'
import CachePolicy from 'http-cache-semantics'
import { LRUCache } from 'lru-cache'
import type { RequestContext } from '../proxy/context.js'
import type { UpstreamResponse } from '../proxy/pipeline.js'
import type { CacheConfig } from './schema.js'
import type { PolicyEvents } from './events.js'
import type { CacheKey, CacheStore, CacheValue } from './cache-store.js'
import { primaryKey, variantKey, varyValue } from './cache-store.js'

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

  key (ctx: RequestContext): CacheKey {
    return { method: ctx.method, path: ctx.upstreamPath, headers: ctx.req.headers }
  }

  /** The response unchanged, or with its body teed into the store when it may be kept. */
  tee (ctx: RequestContext, response: UpstreamResponse): UpstreamResponse {
    const method = ctx.method
    const status = response.statusCode
    if ((method !== 'GET' && method !== 'HEAD') || status < 200 || status > 299 || status === 206) return response
    const headers = response.headers
    if (headers['set-cookie'] !== undefined) return response
    const length = Number(headers['content-length'])
    if (Number.isFinite(length) && length > this.config.maxEntryBytes) return response
    const varyNames = headerList(headers.vary)
    if (varyNames.includes('*')) return response
    const key = this.key(ctx)
    if (this.teedRecently(key, varyNames)) return response
    const policy = new CachePolicy({ method, url: ctx.upstreamPath, headers: ctx.req.headers }, { status, headers }, { shared: true })
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
      for (const name of varyNames) vary[name] = varyValue(ctx.req.headers, name)
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
    let entry
    try {
      entry = await this.store.get(this.key(ctx))
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

  snapshot (): Record<string, unknown> {
    return { ...this.store.stats(), maxEntries: this.config.maxEntries, maxBytes: this.config.maxBytes, maxStaleMs: this.config.maxStaleMs }
  }
}
