/**
 * The last-known-good cache's storage, behind a small interface modelled on
 * undici's CacheStore (get / createWriteStream / delete), so a shared store
 * (Redis) can be added beside the in-memory one. Values are plain data
 * (JSON-serialisable apart from the body) for that reason. Every store
 * must pass test/policies/cache-store-contract.ts.
 */
import { Writable } from 'node:stream'
import type { CachePolicyObject } from 'http-cache-semantics'

/** What a lookup is keyed by. `headers` are the request's, for Vary matching. */
export interface CacheKey {
  method: string
  /** Upstream path with query. */
  path: string
  headers: Record<string, string | string[] | undefined>
}

export interface CacheValue {
  statusCode: number
  headers: Record<string, string | string[]>
  /** The request header values this response varies on (lower-case names); null when the request lacked one. */
  vary?: Record<string, string | null>
  /** Date.now() when stored. */
  cachedAt: number
  /** Date.now() after which the entry must not be served at all (freshness plus the stale allowance). */
  deleteAt: number
  /** http-cache-semantics state, to compute age and freshness when served. */
  policy: CachePolicyObject
}

export interface CachedResponse extends CacheValue {
  body: Buffer
}

/** What a store holds now. */
export interface CacheStoreStats { entries: number, bytes: number }
/** A shared store's part of GET /routes: where it is, whether the fleet's copy is in use, and the local copy's size. */
export interface CacheStoreDescription { store: 'redis', scope: 'fleet' | 'local', local: CacheStoreStats }

export interface CacheStore {
  /** The entry for this key whose Vary values match the request, if one is still servable. */
  get: (key: CacheKey) => CachedResponse | undefined | Promise<CachedResponse | undefined>
  /**
   * A stream for the body: end() commits the entry, destroy() (or an error)
   * discards it. Undefined when the store will not take it (too large).
   */
  createWriteStream: (key: CacheKey, value: CacheValue) => Writable | undefined
  /** Forgets every variant of this method and path. */
  delete: (key: CacheKey) => void | Promise<void>
  stats: () => CacheStoreStats
  /** More for GET /routes (a shared store says where it is and whether it is in use). */
  describe?: () => CacheStoreDescription
}

/** Method and path: every variant of one resource. */
export function primaryKey (key: CacheKey): string {
  return key.method + ' ' + key.path
}

/** One variant: the primary key plus the request's values of the Vary names (a missing header is not an empty one). */
export function variantKey (primary: string, names: readonly string[], headers: CacheKey['headers']): string {
  let out = primary
  for (const name of names) out += '\n' + name + ':' + (varyValue(headers, name) ?? '\u0000')
  return out
}

/** The request header value a Vary name refers to, normalised for comparison. */
export function varyValue (headers: CacheKey['headers'], name: string): string | null {
  const v = headers[name]
  if (v === undefined) return null
  return Array.isArray(v) ? v.join(', ') : v
}

export function varyMatches (vary: CacheValue['vary'], headers: CacheKey['headers']): boolean {
  if (vary === undefined) return true
  for (const name in vary) if (vary[name] !== varyValue(headers, name)) return false
  return true
}

/**
 * The write side every store shares: collects an entry's body, fails the
 * write as soon as it passes `maxEntryBytes` (the entry is then not
 * stored), and hands the whole body to `store` at the end.
 */
export function entryWriter (maxEntryBytes: number, store: (chunks: Buffer[], size: number, done: (err?: Error) => void) => void): Writable {
  const chunks: Buffer[] = []
  let size = 0
  return new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      size += chunk.length
      if (size > maxEntryBytes) {
        cb(new Error(`cache entry larger than maxEntryBytes (${maxEntryBytes})`))
        return
      }
      chunks.push(chunk)
      cb()
    },
    final: (cb) => { store(chunks, size, cb) }
  })
}

/** Approximate bytes an entry holds: body, headers and a fixed overhead (every store counts maxBytes by it). */
export function entrySize (headers: CacheValue['headers'], bodyBytes: number): number {
  let size = bodyBytes + 512
  for (const name in headers) {
    const v = headers[name]!
    size += name.length + (Array.isArray(v) ? v.join('').length : v.length)
  }
  return size
}
